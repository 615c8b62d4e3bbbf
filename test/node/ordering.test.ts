// Start-up order of a sandbox Pod on the real node: egress-init (the firewall)
// runs to completion first, then the egress sidecar starts, and the kubelet
// starts the workload only once the sidecar's startup probe passes. Proved from
// the kubelet's own timestamps, with the operator's image and with images
// whose sidecar is slow to become ready (8 s) or never does.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { afterAll, describe, expect, inject, it } from "vitest";
import { EGRESS_EXECUTABLE } from "../../src/egress/contract.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { OPERATOR_IMAGE } from "../support/docker.js";
import type { ContainerdPaths } from "../support/node/containerd.js";
import { importDockerImages } from "../support/node/images.js";
import { NODE_SANDBOX_IMAGE, NODE_TEST_RESOURCES, waitPod } from "../support/node/pods.js";
import { type RunningOperator, startOperator } from "../support/operator.js";
import { isReady, SandboxClient } from "../support/sandboxes.js";

const kc = kubeConfig();
const core = kc.makeApiClient(k8s.CoreV1Api);
const SLOW = "sandbox-operator-test/slow-egress:8s";
const NEVER = "sandbox-operator-test/slow-egress:never";
const namespaces: Awaited<ReturnType<typeof testNamespace>>[] = [];
const operators: RunningOperator[] = [];

const exec = promisify(execFile);

/**
 * The operator image, with the sidecar's start delayed by `sleep` (its health
 * port opens late or never), built once per tag under the shared Docker lock
 * (asynchronously, so the test's timeout holds while the lock is busy) and
 * imported into the node.
 */
const built = new Map<string, Promise<void>>();
function delayedSidecarImage(tag: string, sleep: string): Promise<void> {
  if (!built.has(tag)) built.set(tag, buildAndImport(tag, sleep));
  return built.get(tag)!;
}
async function buildAndImport(tag: string, sleep: string): Promise<void> {
  // The Pod names the egress executable as its command, so the delay wraps
  // that path (the real binary moved aside), not the image's entrypoint.
  const dockerfile = `FROM ${OPERATOR_IMAGE}
USER 0
RUN mv ${EGRESS_EXECUTABLE} ${EGRESS_EXECUTABLE}.real && printf '#!/bin/sh\\nif [ "$1" = egress ]; then sleep ${sleep}; fi\\nexec ${EGRESS_EXECUTABLE}.real "$@"\\n' > ${EGRESS_EXECUTABLE} && chmod 755 ${EGRESS_EXECUTABLE}
USER 65532:65532
`;
  const child = exec(
    "flock",
    ["-w", "400", "/tmp/sbx-docker.lock", "docker", "build", "-q", "-t", tag, "-"],
    {
      env: { ...process.env, DOCKER_BUILDKIT: "0" },
      timeout: 500_000,
    },
  );
  child.child.stdin?.end(dockerfile);
  await child;
  importDockerImages(inject("nodeContainerd") as ContainerdPaths, [tag]);
}

async function sandboxWith(egressImage: string, prefix: string) {
  const ns = await testNamespace(kc, prefix);
  namespaces.push(ns);
  operators.push(await startOperator({ namespace: ns.name, user: "operator-3", egressImage }));
  const sbx = new SandboxClient(kc, ns.name);
  await sbx.create("ordered", {
    image: NODE_SANDBOX_IMAGE,
    command: ["sleep", "3600"],
    resources: NODE_TEST_RESOURCES,
  });
  return { ns: ns.name, sbx };
}

afterAll(async () => {
  for (const o of operators) await o.stop();
  for (const ns of namespaces) await ns.delete();
});

const at = (t: Date | string | undefined) => (t ? new Date(t).getTime() : Number.NaN);

function startTimes(pod: k8s.V1Pod) {
  const init = pod.status?.initContainerStatuses ?? [];
  const lockdown = init.find((s) => s.name === "egress-init")?.state?.terminated;
  const sidecar = init.find((s) => s.name === "egress");
  const workload = pod.status?.containerStatuses?.find((s) => s.name === "sandbox");
  return { lockdown, sidecar, workload };
}

describe("start-up order on the real node", () => {
  it("egress-init succeeds, then the sidecar starts, then the workload", async () => {
    const { ns, sbx } = await sandboxWith(OPERATOR_IMAGE, "order");
    await sbx.waitFor("ordered", isReady, 120_000);
    const pod = await core.readNamespacedPod({ name: "ordered", namespace: ns });
    const { lockdown, sidecar, workload } = startTimes(pod);
    expect(lockdown?.exitCode).toBe(0);
    expect(sidecar?.started).toBe(true);
    const sidecarStart = at(sidecar?.state?.running?.startedAt);
    const workloadStart = at(workload?.state?.running?.startedAt);
    expect(at(lockdown?.finishedAt)).toBeLessThanOrEqual(sidecarStart);
    expect(sidecarStart).toBeLessThanOrEqual(workloadStart);
  });

  it("a sidecar that takes 8 s to answer its startup probe holds the workload back 8 s", async () => {
    await delayedSidecarImage(SLOW, "8");
    const { ns, sbx } = await sandboxWith(SLOW, "order-slow");
    await sbx.waitFor("ordered", isReady, 120_000);
    const pod = await core.readNamespacedPod({ name: "ordered", namespace: ns });
    const { lockdown, sidecar, workload } = startTimes(pod);
    expect(lockdown?.exitCode).toBe(0);
    const gap = at(workload?.state?.running?.startedAt) - at(sidecar?.state?.running?.startedAt);
    // Timestamps have second resolution; the sleep alone is 8 s.
    expect(gap).toBeGreaterThanOrEqual(7_000);
  }, 600_000);

  it("a sidecar that never becomes ready: the workload never starts", async () => {
    await delayedSidecarImage(NEVER, "infinity");
    const { ns, sbx } = await sandboxWith(NEVER, "order-never");
    const pod = await waitPod(core, ns, "ordered", (p) => {
      const { lockdown, sidecar } = startTimes(p);
      expect(lockdown?.exitCode).toBe(0);
      expect(sidecar?.state?.running).toBeDefined();
    });
    // Long enough for several failed probes (period 2 s).
    await new Promise((r) => setTimeout(r, 15_000));
    const later = await core.readNamespacedPod({ name: "ordered", namespace: ns });
    const { sidecar, workload } = startTimes(later);
    expect(sidecar?.started).toBe(false);
    expect(workload?.state?.running).toBeUndefined();
    expect(workload?.state?.waiting?.reason).toBe("PodInitializing");
    const s = await sbx.get("ordered");
    expect(s?.status?.phase).not.toBe("Running");
    expect(pod.metadata?.uid).toBe(later.metadata?.uid);
  }, 600_000);
});
