// The egress policy file inside the sidecar container. The sidecar follows it
// while it runs, and the lockdown holds no policy, so every change (name and
// address rules, defaultAction) is a file write, not a new sidecar.
import { posix } from "node:path";
import type Docker from "dockerode";
import type { ContainerInspectInfo } from "dockerode";
import type { BackendContext } from "../backend.js";
import { tarOf } from "./archive.js";
import { POLICY_DIR, POLICY_FILE } from "./containers.js";

export class PolicyDelivery {
  /** Policy text last delivered to each sidecar (by container ID); a cache, re-delivered after a restart. */
  private readonly delivered = new Map<string, string>();

  constructor(private readonly docker: Docker) {}

  /** Before a sidecar's first start: the sidecar (and the lockdown, to validate it) reads it as it starts. */
  async put(id: string, policy: string): Promise<void> {
    const archive = await tarOf([
      { name: posix.basename(POLICY_DIR), mode: 0o755, uid: 0, gid: 0 },
      {
        name: POLICY_FILE.slice(posix.dirname(POLICY_DIR).length + 1),
        content: policy,
        mode: 0o644,
        uid: 0,
        gid: 0,
      },
    ]);
    await this.docker.getContainer(id).putArchive(archive, { path: posix.dirname(POLICY_DIR) });
    this.delivered.set(id, policy);
  }

  /** The policy changed: the running sidecar follows its policy file, the workload keeps running. */
  async deliver(sidecar: ContainerInspectInfo, policy: string, ctx: BackendContext): Promise<void> {
    const last = this.delivered.get(sidecar.Id);
    if (last === policy || !sidecar.State.Running) return;
    await this.put(sidecar.Id, policy);
    // After a controller restart the cache is empty: re-delivering the same text is harmless and silent.
    if (last !== undefined) {
      ctx.record({
        type: "Normal",
        reason: "EgressPolicyUpdated",
        message: "delivered the new egress policy to the running sidecar",
      });
    }
  }

  forget(id: string): void {
    this.delivered.delete(id);
  }
}
