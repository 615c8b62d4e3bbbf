// Warm pools and claims against the real apiserver, with the real Sandbox
// controller (pod backend; kwok runs the Pods) and kube-controller-manager's
// garbage collector: fill, claim warm, refill, cold starts, deletion, a
// missing template, scaling to 0 and back, claim expiry, a claim during a
// refill, and a template change rolling only unclaimed sandboxes.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Labels } from "../../src/api/labels.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";
import { type RunningOperator, startOperator, startPools } from "../support/operator.js";
import {
  CLAIM_PLURAL,
  POOL_PLURAL,
  PoolClient,
  type StoredClaim,
  TEMPLATE_PLURAL,
} from "../support/pools.js";

const kc = kubeConfig();
let ns: Awaited<ReturnType<typeof testNamespace>>;
let api: PoolClient;
let operator: RunningOperator;
let pools: Awaited<ReturnType<typeof startPools>>;

const small = { cpu: "100m", memory: "64Mi" };

beforeAll(async () => {
  ns = await testNamespace(kc, "pools");
  api = new PoolClient(kc, ns.name);
  operator = await startOperator({ namespace: ns.name, user: "operator-0" });
  // Sharing the Sandbox controller's informer, as the CLI runs them.
  expect(operator.allSandboxes).toBeDefined();
  // Wired as the CLI does: the claims read the Sandbox controller's writes in
  // flight, the pools only what is stored.
  pools = await startPools({
    namespace: ns.name,
    sandboxes: operator.allSandboxes,
    sandboxStatusWrites: operator.sandboxStatusWrites,
  });
});
afterAll(async () => {
  await pools?.stop();
  await operator?.stop();
  await ns?.delete();
});

const unclaimed = (pool: string) => api.sandboxes(`${Labels.pool}=${pool}`);

async function readyPool(pool: string, n: number) {
  return eventually(
    async () => {
      const p = await api.getPool(pool);
      expect(p?.status?.readyReplicas).toBe(n);
      expect(p?.status?.replicas).toBe(n);
      return p!;
    },
    { timeout: 60_000 },
  );
}

async function claimIn(name: string, phase: string): Promise<StoredClaim> {
  return eventually(
    async () => {
      const c = await api.getClaim(name);
      expect(c?.status?.phase, JSON.stringify(c?.status)).toBe(phase);
      return c!;
    },
    { timeout: 60_000 },
  );
}

describe("a warm pool", () => {
  it("fills; a claim takes a ready sandbox warm with its own identity; the pool refills", async () => {
    await api.template("py", { image: "busybox", resources: small, lifetime: { ttlSeconds: 600 } });
    await api.pool("py", { templateRef: { name: "py" }, replicas: 2 });
    const before = await readyPool("py", 2);
    expect(before.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
    const pooledNames = (await unclaimed("py")).map((s) => s.metadata.name);
    // A pooled sandbox waits with no egress at all.
    for (const s of await unclaimed("py"))
      expect(s.spec.network?.egress).toEqual({ defaultAction: "deny", rules: [] });

    const claim = await api.claim("c1", {
      templateRef: { name: "py" },
      lifetime: { ttlSeconds: 300 },
      labels: { team: "a" },
    });
    const ready = await claimIn("c1", "Ready");
    expect(ready.status?.source).toBe("Warm");
    expect(ready.status?.pool).toBe("py");
    expect(pooledNames).toContain(ready.status?.sandboxName);
    expect(ready.status?.readyMilliseconds).toBeGreaterThanOrEqual(0);

    const sandbox = (await api.sandboxes(`${Labels.claimUid}=${claim.metadata.uid}`))[0]!;
    expect(sandbox.metadata.name).toBe(ready.status?.sandboxName);
    expect(sandbox.metadata.ownerReferences).toEqual([
      expect.objectContaining({
        kind: "SandboxClaim",
        name: "c1",
        uid: claim.metadata.uid,
        controller: true,
      }),
    ]);
    expect(sandbox.metadata.labels?.[Labels.pool]).toBeUndefined();
    expect(sandbox.metadata.labels?.team).toBe("a");
    expect(sandbox.metadata.labels?.[Labels.claimedFromPool]).toBe("py");
    // The lifetime counts from the claim, not from when the pool made the sandbox.
    const created = new Date(claim.metadata.creationTimestamp!).getTime();
    expect(new Date(sandbox.spec.lifetime!.expiresAt!).getTime()).toBe(created + 300_000);
    expect(sandbox.spec.lifetime?.ttlSeconds).toBeUndefined();

    // The refill waits until the claimed sandbox is Ready (src/pool/refill-hold.ts),
    // so the pool's status may still be the one from before the claim: wait for the refill.
    // One wait for all three (a nested wait could outlast the test), and a
    // second refill fails at once rather than as a timeout.
    const after = await eventually(
      async () => {
        const p = await api.getPool("py");
        expect(p?.status?.refills, JSON.stringify(p?.status)).toBeGreaterThanOrEqual(3);
        expect(p?.status?.readyReplicas).toBe(2);
        expect(p?.status?.replicas).toBe(2);
        return p!;
      },
      { timeout: 60_000 },
    );
    expect(after.status?.refills).toBe(3);
    expect(after.status?.claimed).toBe(1);
  }, 120_000);

  it("serves cold, never refuses, what a running workload cannot take", async () => {
    await readyPool("py", 2);
    await api.claim("with-env", {
      templateRef: { name: "py" },
      env: [{ name: "MODE", value: "x" }],
    });
    const c = await claimIn("with-env", "Ready");
    expect(c.status?.source).toBe("Cold");
    expect(c.status?.coldReason).toContain("env");
    expect(c.status?.sandboxName).toBe("with-env");
    const s = (await api.sandboxes(`${Labels.claim}=with-env`))[0]!;
    expect(s.spec.env).toEqual([{ name: "MODE", value: "x" }]);
    expect(c.status?.conditions?.find((x) => x.type === "Bound")?.reason).toBe("BoundCold");
    // The pool gave nothing away.
    expect((await unclaimed("py")).length).toBe(2);
  });

  it("serves cold when the pool is empty", async () => {
    await api.template("empty", { image: "busybox", resources: small });
    await api.pool("empty", { templateRef: { name: "empty" }, replicas: 0 });
    await api.claim("from-empty", { templateRef: { name: "empty" } });
    const c = await claimIn("from-empty", "Ready");
    expect(c.status?.source).toBe("Cold");
    expect(c.status?.coldReason).toBe("no ready sandbox in a warm pool");
  });

  it("deleting a claim deletes its sandbox; deleting the pool deletes only unclaimed ones", async () => {
    await api.template("gc", { image: "busybox", resources: small });
    await api.pool("gc", { templateRef: { name: "gc" }, replicas: 2 });
    await readyPool("gc", 2);
    await api.claim("keep", { templateRef: { name: "gc" } });
    await api.claim("drop", { templateRef: { name: "gc" } });
    const keep = await claimIn("keep", "Ready");
    const drop = await claimIn("drop", "Ready");
    await api.delete(CLAIM_PLURAL, "drop");
    await eventually(async () => expect(await api.sandboxes(`${Labels.claim}=drop`)).toEqual([]), {
      timeout: 30_000,
    });
    expect(drop.status?.sandboxName).toBeDefined();
    await readyPool("gc", 2);
    await api.delete(POOL_PLURAL, "gc");
    await eventually(async () => expect(await unclaimed("gc")).toEqual([]), { timeout: 30_000 });
    const kept = await api.sandboxes(`${Labels.claim}=keep`);
    expect(kept.map((s) => s.metadata.name)).toEqual([keep.status?.sandboxName]);
    expect(kept[0]!.metadata.deletionTimestamp).toBeUndefined();
  });

  it("reports a deleted template as a condition, keeps its sandboxes, and resumes when it returns", async () => {
    await api.template("gone", { image: "busybox", resources: small });
    await api.pool("gone", { templateRef: { name: "gone" }, replicas: 1 });
    await readyPool("gone", 1);
    await api.delete(TEMPLATE_PLURAL, "gone");
    await eventually(async () => {
      const p = await api.getPool("gone");
      const c = p?.status?.conditions?.find((x) => x.type === "TemplateAvailable");
      expect(c).toMatchObject({ status: "False", reason: "TemplateNotFound" });
    });
    expect((await unclaimed("gone")).length).toBe(1);
    // A claim of the missing template waits with a reason, not an error.
    await api.claim("orphan", { templateRef: { name: "gone" } });
    await eventually(async () => {
      const c = await api.getClaim("orphan");
      expect(c?.status?.phase).toBe("Pending");
      expect(c?.status?.conditions?.find((x) => x.type === "Ready")?.reason).toBe(
        "TemplateNotFound",
      );
    });
    await api.patch(POOL_PLURAL, "gone", { spec: { replicas: 2 } });
    await api.template("gone", { image: "busybox", resources: small });
    await readyPool("gone", 2);
    await claimIn("orphan", "Ready");
  });

  it("scales to 0 and back through the scale subresource's field", async () => {
    await api.template("sc", { image: "busybox", resources: small });
    await api.pool("sc", { templateRef: { name: "sc" }, replicas: 3 });
    await readyPool("sc", 3);
    await api.patch(POOL_PLURAL, "sc", { spec: { replicas: 0 } });
    await eventually(async () => expect(await unclaimed("sc")).toEqual([]), { timeout: 30_000 });
    await readyPool("sc", 0);
    await api.patch(POOL_PLURAL, "sc", { spec: { replicas: 2 } });
    await readyPool("sc", 2);
  });

  it("expires a claim's sandbox at the claim's lifetime", async () => {
    await readyPool("py", 2);
    await api.claim("short", { templateRef: { name: "py" }, lifetime: { ttlSeconds: 4 } });
    const c = await claimIn("short", "Ready");
    await claimIn("short", "Expired");
    await eventually(async () => expect(await api.sandboxes(`${Labels.claim}=short`)).toEqual([]), {
      timeout: 30_000,
    });
    expect(c.status?.expiresAt).toBeDefined();
  });

  it("binds a pooled sandbox that is still starting during a refill", async () => {
    await api.template("slow", { image: "busybox", resources: small });
    // One at a time, one per second: the claim arrives while the pool is refilling.
    await api.pool("slow", {
      templateRef: { name: "slow" },
      replicas: 3,
      refill: { perSecond: 1, burst: 1 },
    });
    await eventually(async () => expect((await unclaimed("slow")).length).toBeGreaterThan(0));
    await api.claim("during-refill", { templateRef: { name: "slow" } });
    const c = await claimIn("during-refill", "Ready");
    expect(["Warm", "Warming"], JSON.stringify(c.status)).toContain(c.status?.source);
    expect(c.status?.pool).toBe("slow");
    await readyPool("slow", 3);
  });

  it("rolls unclaimed sandboxes to a changed template within its budget; claimed ones are never touched", async () => {
    await api.template("roll", { image: "busybox", resources: small });
    await api.pool("roll", { templateRef: { name: "roll" }, replicas: 3 });
    const before = await readyPool("roll", 3);
    await api.claim("rolled-not", { templateRef: { name: "roll" } });
    const claimed = await claimIn("rolled-not", "Ready");
    const claimedSandbox = (await api.sandboxes(`${Labels.claim}=rolled-not`))[0]!;
    await readyPool("roll", 3);

    let minReady = Number.POSITIVE_INFINITY;
    let maxTotal = 0;
    const watch = setInterval(async () => {
      const s = await unclaimed("roll").catch(() => undefined);
      if (!s) return;
      const live = s.filter((x) => !x.metadata.deletionTimestamp);
      maxTotal = Math.max(maxTotal, live.length);
      minReady = Math.min(
        minReady,
        live.filter((x) => x.status?.conditions?.find((c) => c.type === "Ready")?.status === "True")
          .length,
      );
    }, 50);
    await api.patch(TEMPLATE_PLURAL, "roll", { spec: { env: [{ name: "V", value: "2" }] } });
    const after = await eventually(
      async () => {
        const p = await api.getPool("roll");
        expect(p?.status?.templateHash).not.toBe(before.status?.templateHash);
        expect(p?.status?.updatedReplicas).toBe(3);
        expect(p?.status?.readyReplicas).toBe(3);
        expect(p?.status?.replicas).toBe(3);
        return p!;
      },
      { timeout: 60_000 },
    );
    clearInterval(watch);
    for (const s of await unclaimed("roll")) {
      expect(s.metadata.labels?.[Labels.templateHash]).toBe(after.status?.templateHash);
      expect(s.spec.env).toEqual([{ name: "V", value: "2" }]);
    }
    // maxSurge 1, maxUnavailable 0: never more than 4, never fewer than 3 ready.
    expect(maxTotal).toBeLessThanOrEqual(4);
    expect(minReady).toBeGreaterThanOrEqual(3);
    const still = (await api.sandboxes(`${Labels.claim}=rolled-not`))[0]!;
    expect(still.metadata.uid).toBe(claimedSandbox.metadata.uid);
    expect(still.metadata.generation).toBe(claimedSandbox.metadata.generation);
    expect(still.spec.env).toBeUndefined();
    expect(claimed.status?.sandboxName).toBe(still.metadata.name);
  });
});
