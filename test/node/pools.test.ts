// Warm pools and claims with the pod backend on the real node: the pooled
// Pods really run (egress-init, the egress sidecar, the workload); a claim
// with no egress rule takes one warm, its Pod untouched (same UID, no
// restart); a claim with an egress rule is served cold on the pod backend
// (its policy channel is the kubelet-synced file, see src/egress/README.md)
// and its cold Pod runs with the claim's policy.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Labels } from "../../src/api/labels.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { OPERATOR_IMAGE } from "../support/docker.js";
import { eventually } from "../support/eventually.js";
import { kubectl, NODE_SANDBOX_IMAGE, NODE_TEST_RESOURCES } from "../support/node/pods.js";
import { type RunningOperator, startOperator, startPools } from "../support/operator.js";
import { PoolClient, type StoredClaim } from "../support/pools.js";

const kc = kubeConfig();
let ns: Awaited<ReturnType<typeof testNamespace>>;
let api: PoolClient;
let operator: RunningOperator;
let pools: Awaited<ReturnType<typeof startPools>>;

beforeAll(async () => {
  ns = await testNamespace(kc, "npools");
  api = new PoolClient(kc, ns.name);
  operator = await startOperator({
    namespace: ns.name,
    user: "operator-1",
    egressImage: OPERATOR_IMAGE,
  });
  // Wired as the CLI does (one Sandbox cache; the claims see its status writes in flight).
  pools = await startPools({
    namespace: ns.name,
    user: "operator-2",
    sandboxes: operator.allSandboxes,
    sandboxStatusWrites: operator.sandboxStatusWrites,
  });
});
afterAll(async () => {
  await pools?.stop();
  await operator?.stop();
  await ns?.delete();
});

const claimReady = (name: string) =>
  eventually(
    async () => {
      const c = await api.getClaim(name);
      expect(c?.status?.phase, JSON.stringify(c?.status)).toBe("Ready");
      return c as StoredClaim;
    },
    { timeout: 120_000, interval: 50 },
  );

describe("warm pools on the real node", () => {
  it("claims a running pooled Pod without restarting it, and serves an egress rule cold", async () => {
    await api.template("t", {
      image: NODE_SANDBOX_IMAGE,
      command: ["sleep", "3600"],
      resources: NODE_TEST_RESOURCES,
    });
    await api.pool("p", { templateRef: { name: "t" }, replicas: 1 });
    await eventually(async () => expect((await api.getPool("p"))?.status?.readyReplicas).toBe(1), {
      timeout: 150_000,
      interval: 250,
    });
    const pooled = (await api.sandboxes(`${Labels.pool}=p`))[0]!;
    const podBefore = JSON.parse(
      (await kubectl(["get", "pod", "-n", ns.name, pooled.metadata.name!, "-o", "json"])).stdout,
    );

    const t0 = performance.now();
    await api.claim("warm", { templateRef: { name: "t" } });
    const warm = await claimReady("warm");
    const warmMs = performance.now() - t0;
    expect(warm.status?.source).toBe("Warm");
    expect(warm.status?.sandboxName).toBe(pooled.metadata.name);
    const podAfter = JSON.parse(
      (await kubectl(["get", "pod", "-n", ns.name, pooled.metadata.name!, "-o", "json"])).stdout,
    );
    expect(podAfter.metadata.uid).toBe(podBefore.metadata.uid);
    const restarts = (p: { status: { containerStatuses?: { restartCount: number }[] } }) =>
      (p.status.containerStatuses ?? []).map((c) => c.restartCount);
    expect(restarts(podAfter)).toEqual(restarts(podBefore));
    const exec = await kubectl([
      "exec",
      "-n",
      ns.name,
      pooled.metadata.name!,
      "-c",
      "sandbox",
      "--",
      "echo",
      "hi",
    ]);
    expect(exec.stdout).toBe("hi\n");

    const c0 = performance.now();
    await api.claim("ruled", {
      templateRef: { name: "t" },
      egress: { rules: [{ action: "allow", target: "example.org", ports: [443] }] },
    });
    const cold = await claimReady("ruled");
    const coldMs = performance.now() - c0;
    expect(cold.status?.source).toBe("Cold");
    expect(cold.status?.coldReason).toContain("pod backend");
    const s = (await api.sandboxes(`${Labels.claim}=ruled`))[0]!;
    expect(s.spec.network?.egress?.rules).toEqual([
      { action: "allow", target: "example.org", ports: [443] },
    ]);
    console.log(
      `real node: warm claim -> Ready ${Math.round(warmMs)} ms, cold ${Math.round(coldMs)} ms`,
    );
  });
});
