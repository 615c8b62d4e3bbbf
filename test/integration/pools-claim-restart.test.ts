// A warm binding's claim status is written late (Bound with Ready, within
// WARM_BOUND_GRACE_MS): the binding itself, on the Sandbox, is the record.
// These tests leave the world in the states a stopped claim controller leaves
// behind during that grace, against the real apiserver, and check that the
// next controllers finish the claim from the sandboxes' labels alone:
//   - a controller stopped while a warm binding's Bound is deferred: the next
//     one writes Bound for that same sandbox;
//   - two bindings of one claim, left by two replicas that both went away
//     before writing its status (the state in which claims were lost in
//     pools-concurrency, each replica keeping its own binding and deleting
//     the other's): two fresh replicas keep exactly one, and the claim is
//     Bound. Two fresh replicas list the sandboxes in the same order, so this
//     does not force the disagreement itself; the two-replica simulation in
//     src/claim/decide.test.ts does, deterministically.
// The Sandbox controller is stopped once the pool is ready, so a claimed
// sandbox never becomes Ready at the claim's generation and the grace runs.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Labels } from "../../src/api/labels.js";
import type { SandboxClaim } from "../../src/api/pools.js";
import { SandboxSpecSchema } from "../../src/api/sandbox-spec.js";
import { bindPatch } from "../../src/claim/sandbox.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";
import { type RunningOperator, startOperator, startPools } from "../support/operator.js";
import { PoolClient, SANDBOX_PLURAL } from "../support/pools.js";

const kc = kubeConfig();
let ns: Awaited<ReturnType<typeof testNamespace>>;
let api: PoolClient;
let operator: RunningOperator | undefined;
const running: Array<Awaited<ReturnType<typeof startPools>>> = [];
const TEMPLATE = { image: "busybox", resources: { cpu: "10m", memory: "16Mi" } };

beforeAll(async () => {
  ns = await testNamespace(kc, "pools-restart");
  api = new PoolClient(kc, ns.name);
});
afterAll(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
  await operator?.stop();
  await ns?.delete();
});

async function stopAll(): Promise<void> {
  await Promise.all(running.splice(0).map((r) => r.stop({ release: false })));
}

async function start(user: string) {
  const p = await startPools({ namespace: ns.name, user });
  running.push(p);
  return p;
}

/** Live sandboxes carrying the claim's UID. */
async function boundTo(uid: string) {
  return (await api.sandboxes(`${Labels.claimUid}=${uid}`)).filter(
    (s) => !s.metadata.deletionTimestamp,
  );
}

/** Ready pooled sandboxes nobody has claimed. */
async function unclaimed() {
  return (await api.sandboxes(`${Labels.pool}=p`)).filter(
    (s) =>
      !s.metadata.deletionTimestamp &&
      !s.metadata.labels?.[Labels.claimUid] &&
      s.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
  );
}

describe("a claim whose warm binding's status was deferred when its controller stopped", () => {
  beforeAll(async () => {
    operator = await startOperator({ namespace: ns.name, user: "operator-0" });
    await api.template("t", TEMPLATE);
    await api.pool("p", { templateRef: { name: "t" }, replicas: 3 });
    await start("operator-1");
    await eventually(async () => expect(await unclaimed()).toHaveLength(3), {
      timeout: 120_000,
      interval: 250,
    });
    await operator.stop();
    operator = undefined;
  }, 180_000);

  it("is finished by the next controller: Bound for the sandbox the stopped one bound", async () => {
    const created = await api.claim("c1", { templateRef: { name: "t" } });
    const uid = created.metadata.uid!;
    // The binding is on the sandbox; the claim's status is left for Bound with Ready.
    const [bound] = await eventually(
      async () => {
        const b = await boundTo(uid);
        expect(b).toHaveLength(1);
        return b;
      },
      { timeout: 4_000, interval: 50 },
    );
    expect((await api.getClaim("c1"))?.status?.sandboxName).toBeUndefined();
    await stopAll();

    await start("operator-2");
    const claim = await eventually(
      async () => {
        const c = await api.getClaim("c1");
        expect(c?.status?.phase).toBe("Bound");
        return c!;
      },
      { timeout: 30_000, interval: 100 },
    );
    expect(claim.status).toMatchObject({ sandboxName: bound!.metadata.name, source: "Warm" });
    expect((await boundTo(uid)).map((s) => s.metadata.name)).toEqual([bound!.metadata.name]);
  }, 60_000);

  it("keeps one of two bindings left by two stopped replicas and releases the other", async () => {
    await stopAll();
    const created = (await api.claim("c2", { templateRef: { name: "t" } })) as SandboxClaim;
    const template = SandboxSpecSchema.parse(TEMPLATE);
    // What two replicas that each bound a ready sandbox to c2 leave behind when
    // both stop within the grace: two sandboxes with c2's UID, no claim status.
    const pair = (await unclaimed()).slice(0, 2);
    expect(pair).toHaveLength(2);
    const expiresAt = Date.now() + 3_600_000;
    for (const s of pair)
      await api.patch(
        SANDBOX_PLURAL,
        s.metadata.name!,
        bindPatch(
          created,
          { resourceVersion: s.metadata.resourceVersion! },
          template,
          "p",
          expiresAt,
        ),
      );
    expect(await boundTo(created.metadata.uid!)).toHaveLength(2);

    // Two fresh replicas at once, racing on c2.
    await Promise.all([start("operator-2"), start("operator-3")]);
    const names = pair.map((s) => s.metadata.name);
    await eventually(
      async () => {
        const c = await api.getClaim("c2");
        expect(c?.status?.phase).toBe("Bound");
        const live = await boundTo(created.metadata.uid!);
        expect(live.map((s) => s.metadata.name)).toEqual([c!.status!.sandboxName]);
        expect(names).toContain(c!.status!.sandboxName);
      },
      { timeout: 30_000, interval: 100 },
    );
    // And it stays so: no replica deletes the kept one afterwards.
    await new Promise((r) => setTimeout(r, 2_000));
    const c = await api.getClaim("c2");
    expect(c?.status?.phase).toBe("Bound");
    expect((await boundTo(created.metadata.uid!)).map((s) => s.metadata.name)).toEqual([
      c!.status!.sandboxName,
    ]);
  }, 60_000);
});
