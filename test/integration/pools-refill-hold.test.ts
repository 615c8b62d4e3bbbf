// A pool holds its refill while the claims it served wait for their sandboxes
// (src/pool/refill-hold.ts), against the real apiserver with the real Sandbox
// controller (pod backend; kwok runs the Pods). The hold's bounds are set far
// beyond the test's length, and the Sandbox controller is stopped while the
// claims bind, so their sandboxes stay short of Ready (the binding changes
// their spec) for as long as the test wants: no replacement may appear
// meanwhile. In every list of the namespace's Sandboxes (one consistent
// snapshot from etcd) that holds a replacement, every claimed sandbox is
// already Ready at its generation. Once the Sandbox controller is back, the
// claims are served and the pool refills in full.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Labels } from "../../src/api/labels.js";
import type { Sandbox } from "../../src/api/sandbox.js";
import { readyAtGeneration } from "../../src/pool/pooled.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";
import { type RunningOperator, startOperator, startPools } from "../support/operator.js";
import { PoolClient } from "../support/pools.js";

const kc = kubeConfig();
let ns: Awaited<ReturnType<typeof testNamespace>>;
let api: PoolClient;
let operator: RunningOperator;
let pools: Awaited<ReturnType<typeof startPools>>;

beforeAll(async () => {
  ns = await testNamespace(kc, "refill-hold");
  api = new PoolClient(kc, ns.name);
  operator = await startOperator({ namespace: ns.name, user: "operator-0" });
  // Its own Sandbox cache: the Sandbox controller is stopped and started again below.
  pools = await startPools({
    namespace: ns.name,
    refillHold: { perClaimMs: 120_000, maxMs: 120_000 },
  });
});
afterAll(async () => {
  await pools?.stop();
  await operator?.stop();
  await ns?.delete();
});

describe("a pool's refill while claims wait", () => {
  it("makes no replacement before every claimed sandbox is Ready, then refills", async () => {
    const N = 4;
    await api.template("t", {
      image: "busybox",
      resources: { cpu: "100m", memory: "64Mi" },
      lifetime: { ttlSeconds: 600 },
    });
    await api.pool("p", { templateRef: { name: "t" }, replicas: N });
    await eventually(
      async () => {
        const p = await api.getPool("p");
        expect(p?.status?.readyReplicas).toBe(N);
        expect(p?.status?.replicas).toBe(N);
      },
      { timeout: 60_000 },
    );
    const stock = new Set((await api.sandboxes()).map((s) => s.metadata.name));
    expect(stock.size).toBe(N);

    // No Sandbox controller: a claimed sandbox stays short of Ready at its new generation.
    await operator.stop();
    const claims = await Promise.all(
      Array.from({ length: N }, (_, i) => api.claim(`c${i}`, { templateRef: { name: "t" } })),
    );
    const uids = new Set(claims.map((c) => c.metadata.uid));
    const look = async () => {
      const all = (await api.sandboxes()) as unknown as Sandbox[];
      return {
        claimed: all.filter((s) => uids.has(s.metadata.labels?.[Labels.claimUid])),
        replacements: all.filter(
          (s) => s.metadata.labels?.[Labels.pool] === "p" && !stock.has(s.metadata.name),
        ),
      };
    };
    await eventually(async () => {
      const { claimed } = await look();
      expect(claimed).toHaveLength(N);
      expect(claimed.filter(readyAtGeneration)).toEqual([]);
    });
    // Bound and waiting: the pool (told of each binding) makes nothing, for as long as that lasts.
    const until = Date.now() + 3000;
    while (Date.now() < until) {
      expect((await look()).replacements.map((s) => s.metadata.name)).toEqual([]);
      await new Promise((r) => setTimeout(r, 100));
    }

    operator = await startOperator({ namespace: ns.name, user: "operator-0" });
    // Every snapshot until the pool is full again: no replacement beside a claimed sandbox still starting.
    let sawReplacement = false;
    await eventually(
      async () => {
        const { claimed, replacements } = await look();
        const waiting = claimed.filter((s) => !readyAtGeneration(s));
        if (replacements.length) {
          sawReplacement = true;
          expect
            .soft(
              waiting.map((s) => s.metadata.name),
              "claimed sandboxes still starting while the pool already made a replacement",
            )
            .toEqual([]);
        }
        expect(claimed).toHaveLength(N);
        expect(claimed.every(readyAtGeneration)).toBe(true);
        expect(replacements.filter(readyAtGeneration)).toHaveLength(N);
      },
      { timeout: 60_000, interval: 20 },
    );
    expect(sawReplacement).toBe(true);
    for (const c of claims)
      expect((await api.getClaim(c.metadata.name!))?.status?.source).toBe("Warm");
    const p = await api.getPool("p");
    expect(p?.status?.refills).toBe(2 * N);
  });
});
