// Whether a sandbox's containers stand as its spec wants them: both exist,
// carry the spec hashes desired, the sidecar runs and is not being removed.
// Then a reconcile has nothing to create, so it skips what only creating
// needs (the images' and the network's round trips to the daemon): a warm
// pooled sandbox taking a claim's policy pays only for the policy's delivery.
import type { ContainerInspectInfo } from "dockerode";
import { DockerLabels } from "./names.js";

type Inspected = Pick<ContainerInspectInfo, "Config" | "State">;

export function intact(
  sidecar: Inspected | undefined,
  workload: Inspected | undefined,
  want: { sidecar?: string; workload?: string },
): boolean {
  if (!sidecar || !workload) return false;
  const hash = (c: Inspected) => c.Config.Labels?.[DockerLabels.specHash];
  return (
    sidecar.State.Running &&
    !sidecar.State.Restarting &&
    !sidecar.State.Dead &&
    !workload.State.Dead &&
    want.sidecar !== undefined &&
    hash(sidecar) === want.sidecar &&
    hash(workload) === want.workload
  );
}
