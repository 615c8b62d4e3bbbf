// Sharded controllers against the real apiserver: several replicas reconcile
// at once, each the keys of the shards whose Leases it holds. A burst of
// ConfigMaps, each of which a reconcile answers with one Secret; mid-burst one
// replica dies (stops without releasing: its Leases must expire) and another
// joins (shards are given up to it). Proven from the apiserver's audit log and
// the replicas' own views:
// - no orphan: every ConfigMap gets its Secret, the dead replica's shards included;
// - no duplicate write: each Secret is created exactly once, and ownership of
//   a key moves without alternating (an earlier owner never writes for a key
//   after a later one has); a new owner may repeat a create its cache did not
//   show yet, which the apiserver refuses (409);
// - no shard ever held by two replicas at once (sampled every few ms);
// - the apiserver refused nothing but such repeats.
// Run twice: with every replica watching everything, and with per-shard
// watches (ShardedInformer: each replica caches only its shards' objects, by a
// shard label; unlabelled ConfigMaps are labelled by their shard's holder, as
// the Sandbox controller does), where a moved shard's objects are re-listed by
// the new holder.
import * as k8s from "@kubernetes/client-node";
import { Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { Controller } from "../../src/controller/controller.js";
import { apiStatus, errorMessage } from "../../src/controller/errors.js";
import {
  Informer,
  type KubeObject,
  keyOf,
  type ObjectSource,
} from "../../src/controller/informer.js";
import { rawRequest } from "../../src/controller/raw-request.js";
import {
  shardLabelValue,
  shardOf,
  shardSelector,
  unshardedSelector,
} from "../../src/controller/shard.js";
import { ShardedInformer } from "../../src/controller/sharded-informer.js";
import { gateWrites, NotLeaderError, notLeaderCause } from "../../src/controller/write-gate.js";
import { unlimited } from "../../src/kube/config.js";
import { createLogger, silentLogger } from "../../src/observability/logger.js";
import { auditOffset, completedRequests } from "../support/audit-log.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";

// Connections kept alive, as the operator's are (a TLS handshake per lease
// renewal would make renewals, not the code under test, the slow part).
const kc = unlimited(kubeConfig());
const core = kc.makeApiClient(k8s.CoreV1Api);
const log = process.env.DEBUG_SHARDS ? createLogger({ level: "info" }) : silentLogger();
const SHARDS = 8;
const SUITE = "sharded";
/** Each scenario its own objects: a per-shard replica would label (and answer) the other's. */
const suiteOf = (watches: Watches) => `${SUITE}-${watches}`;
const SHARD_LABEL = "test.sandboxing.dev/shard";
/** Short Lease timings, so a dead replica's shards move within seconds. */
const TIMINGS = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 250 };
/**
 * How long after the last create a ConfigMap may wait for its Secret, from the
 * Lease timings (L, D, P) alone. A holder keeps a shard only while a renewal
 * cycle (its PUT, the retry period, the next round's LIST and PUT) fits in the
 * renew deadline: 3r + P < D, so each request takes r < (D - P) / 3 and a round
 * (P, a LIST, the claims) lasts at most ROUND = P + 2(D - P) / 3 (1.4 s here).
 * The slowest key is one of the dead replica's shards that then moves again to
 * the newcomer: the survivors see the dead Lease's last change within a round,
 * count it expired a lease duration later and notice within another round
 * (L + 2 ROUND); racing for the same free shards, the compare-and-swap lets one
 * of them through per shard and round (2 more for the dead replica's ≤ 3);
 * counting the newcomer, a survivor above its share gives a shard up within a
 * round, drains it (≤ D) and clears the holder (2r < ROUND); the newcomer takes
 * it at its next round (ROUND + r); then the shard's LIST, the label PATCH, its
 * watch event and the Secret's POST (< 2 ROUND). L + D + 9 ROUND: 17.8 s.
 * Beyond that regime (a machine so loaded that Lease requests take over
 * (D - P) / 3, measured: p90 1.2-1.8 s at load average 21-28) holders lose their
 * shards at every renewal and no wait would be a bound.
 */
const ROUND_MS =
  TIMINGS.retryPeriodMs + (2 * (TIMINGS.renewDeadlineMs - TIMINGS.retryPeriodMs)) / 3;
const ANSWERED_WITHIN_MS = TIMINGS.leaseDurationMs + TIMINGS.renewDeadlineMs + 9 * ROUND_MS;
type Watches = "all" | "per-shard";
let ns: Awaited<ReturnType<typeof testNamespace>>;
const running: Controller[] = [];

beforeAll(async () => {
  ns = await testNamespace(kc, "ctl-shards");
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((c) => c.stop()));
});
afterAll(async () => {
  await ns?.delete();
});

/** Every reconcile that wrote, by whom (the replica names itself as the field manager). */
interface Write {
  replica: string;
  key: string;
  ok: boolean;
  /** Refused by this replica's own gate (it no longer held the shard). */
  refused: boolean;
  /** The apiserver's answer to a failed create. */
  status?: number;
}

function replica(identity: string, writes: Write[], watches: Watches = "all") {
  const suite = `suite=${suiteOf(watches)}`;
  const informer = (resource: string, labelSelector: string, metadataOnly = false) =>
    new Informer<KubeObject>({
      kubeConfig: kc,
      apiPath: "/api/v1",
      resource,
      namespaces: [ns.name],
      labelSelector,
      metadataOnly,
      log,
    });
  const source = (resource: string): ObjectSource<KubeObject> =>
    watches === "all"
      ? informer(resource, suite)
      : new ShardedInformer((shard) =>
          informer(resource, shardSelector(SHARD_LABEL, shard, SHARDS, suite)),
        );
  const configMaps = source("configmaps");
  const secrets = source("secrets");
  caches.set(identity, configMaps);
  // Per shard: ConfigMaps not labelled for a shard, names only; the holder labels them.
  const unlabelled =
    watches === "all"
      ? undefined
      : informer("configmaps", unshardedSelector(SHARD_LABEL, SHARDS, suite), true);
  let c: Controller | undefined;
  const writer = gateWrites(
    kc,
    Object.assign(() => c!.writeGate(), { contextual: true }),
  );
  c = new Controller({
    name: SUITE,
    primary: configMaps,
    secondaries: [
      {
        informer: secrets,
        primaryKey: (o) =>
          o.metadata?.labels?.owner && `${o.metadata.namespace}/${o.metadata.labels.owner}`,
      },
      ...(unlabelled ? [{ informer: unlabelled, primaryKey: keyOf }] : []),
    ],
    reconcile: async (key, ctx) => {
      const [namespace, name] = key.split("/") as [string, string];
      const shardLabels =
        watches === "all" ? {} : { [SHARD_LABEL]: shardLabelValue(shardOf(key, SHARDS), SHARDS) };
      const bare = unlabelled?.get(key);
      if (bare) {
        await rawRequest(writer, "PATCH", `/api/v1/namespaces/${namespace}/configmaps/${name}`, {
          query: { fieldManager: identity },
          body: { metadata: { uid: bare.metadata?.uid, labels: shardLabels } },
          contentType: "application/merge-patch+json",
          signal: ctx.signal,
        });
        labelled.push({ replica: identity, key });
        return;
      }
      if (!configMaps.get(key) || secrets.get(`${namespace}/${name}-out`)) return;
      // A little work between the decision and the write, as a real reconcile has.
      await new Promise((r) => setTimeout(r, 5));
      try {
        await rawRequest(writer, "POST", `/api/v1/namespaces/${namespace}/secrets`, {
          query: { fieldManager: identity },
          body: {
            metadata: {
              name: `${name}-out`,
              labels: { suite: suiteOf(watches), owner: name, ...shardLabels },
            },
          },
          signal: ctx.signal,
        });
        writes.push({ replica: identity, key, ok: true, refused: false });
      } catch (err) {
        const refused = !!notLeaderCause(err) || ctx.signal.aborted;
        writes.push({ replica: identity, key, ok: false, refused, status: apiStatus(err) });
        throw err;
      }
    },
    concurrency: 4,
    backoff: { baseMs: 20, maxMs: 200 },
    sharding: {
      kubeConfig: kc,
      namespace: ns.name,
      // A Lease group per scenario: the other's membership Leases would count as live replicas.
      name: `shards-${watches}`,
      identity,
      shards: SHARDS,
      groupLabel: "test.sandboxing.dev/lease-group",
      ...TIMINGS,
    },
    registry: new Registry(),
    metricPrefix: "test",
    log,
  });
  running.push(c);
  c.start();
  return c;
}

/** Samples every replica's held shards; records any shard two replicas hold at once. */
function overlapWatch(replicas: Map<string, Controller>) {
  const overlaps: string[] = [];
  const timer = setInterval(() => {
    const holder = new Map<number, string>();
    for (const [id, c] of replicas) {
      for (const s of c.heldShards()) {
        const other = holder.get(s);
        if (other) overlaps.push(`shard ${s}: ${other} and ${id}`);
        holder.set(s, id);
      }
    }
  }, 5);
  return { overlaps, stop: () => clearInterval(timer) };
}

/**
 * Each ConfigMap still without its Secret: its shard, who holds that shard
 * (by the Lease and by the replicas' own views) and whose cache has it, so a
 * failure says whether a key was lost or its shard was still on its way.
 */
async function unanswered(watches: Watches, replicas: Map<string, Controller>): Promise<string> {
  const secrets = await core.listNamespacedSecret({
    namespace: ns.name,
    labelSelector: `suite=${suiteOf(watches)}`,
  });
  const answered = new Set(secrets.items.map((s) => s.metadata?.name));
  const leases = await rawRequest<{
    items: { metadata: { name: string }; spec?: { holderIdentity?: string } }[];
  }>(kc, "GET", `/apis/coordination.k8s.io/v1/namespaces/${ns.name}/leases`);
  const holderOf = (shard: number) =>
    leases.items.find((l) => l.metadata.name === `shards-${watches}-shard-${shard}`)?.spec
      ?.holderIdentity;
  return names
    .filter((n) => !answered.has(`${n}-out`))
    .map((n) => {
      const key = `${ns.name}/${n}`;
      const shard = shardOf(key, SHARDS);
      const heldBy = [...replicas]
        .filter(([, c]) => c.heldShards().includes(shard))
        .map(([id]) => id);
      const cachedBy = [...replicas.keys()].filter((id) => caches.get(id)?.get(key));
      return `${key}: shard ${shard}, Lease holder ${holderOf(shard) ?? "none"}, held by [${heldBy}], cached by [${cachedBy}]`;
    })
    .join("\n");
}

/** Each replica's ConfigMap cache, by identity. */
const caches = new Map<string, ObjectSource<KubeObject>>();
/** Shard labels written by a reconcile (per-shard watches), by whom. */
const labelled: { replica: string; key: string }[] = [];

let names: string[] = [];
describe("sharded Controller", () => {
  it.each<Watches>(["all", "per-shard"])(
    "spreads shards, survives a dead replica and a new one, with no orphan and no duplicate write (watches: %s)",
    async (watches) => {
      const auditFrom = auditOffset(inject("auditLogPath"));
      const writes: Write[] = [];
      labelled.length = 0;
      const replicas = new Map<string, Controller>();
      for (const id of ["a", "b", "c"]) replicas.set(id, replica(id, writes, watches));
      const watch = overlapWatch(replicas);
      try {
        // 8 shards over 3 replicas: at most 3 each, all held.
        await eventually(
          () => {
            const held = [...replicas.values()].map((c) => c.heldShards().length);
            expect(held.reduce((a, b) => a + b, 0)).toBe(SHARDS);
            for (const n of held) expect(n).toBeLessThanOrEqual(3);
          },
          { timeout: 20_000 },
        );

        names = Array.from({ length: 80 }, (_, i) => `${watches}-${i}`);
        // Per shard: odd ones carry their shard label from creation, even ones get it from their shard's holder.
        const create = (name: string, i: number) =>
          core.createNamespacedConfigMap({
            namespace: ns.name,
            body: {
              metadata: {
                name,
                labels: {
                  suite: suiteOf(watches),
                  ...(watches === "per-shard" && i % 2
                    ? {
                        [SHARD_LABEL]: shardLabelValue(
                          shardOf(`${ns.name}/${name}`, SHARDS),
                          SHARDS,
                        ),
                      }
                    : {}),
                },
              },
            },
          });
        await Promise.all(names.slice(0, 30).map((n, i) => create(n, i)));
        // c dies: no release, no drain; its shards are free only once their Leases expire.
        const dead = replicas.get("c")!;
        const deadShards = dead.heldShards();
        expect(deadShards.length).toBeGreaterThan(0);
        replicas.delete("c");
        running.splice(running.indexOf(dead), 1);
        await dead.stop({ release: false });
        await Promise.all(names.slice(30, 55).map((n, i) => create(n, 30 + i)));
        // d joins: a and b give up their surplus to it.
        replicas.set("d", replica("d", writes, watches));
        await Promise.all(names.slice(55).map((n, i) => create(n, 55 + i)));

        // No orphan: every ConfigMap answered, the dead replica's keys included.
        await eventually(
          async () => {
            const list = await core.listNamespacedSecret({
              namespace: ns.name,
              labelSelector: `suite=${suiteOf(watches)}`,
            });
            expect(
              list.items
                .map((s) => s.metadata?.name)
                .filter((n) => n?.startsWith(`${watches}-`))
                .sort(),
            ).toEqual(names.map((n) => `${n}-out`).sort());
          },
          { timeout: ANSWERED_WITHIN_MS },
        ).catch(async (err) => {
          throw new Error(`${errorMessage(err)}\n${await unanswered(watches, replicas)}`, {
            cause: err,
          });
        });
        const deadKeys = names.filter((n) =>
          deadShards.includes(shardOf(`${ns.name}/${n}`, SHARDS)),
        );
        expect(deadKeys.length).toBeGreaterThan(0);
        // The newcomer got its share, and all shards are held by the living.
        await eventually(
          () => {
            expect(replicas.get("d")!.heldShards().length).toBeGreaterThan(0);
            const held = [...replicas.values()].flatMap((c) => c.heldShards());
            expect(held.sort((x, y) => x - y)).toEqual([...Array(SHARDS).keys()]);
          },
          { timeout: 20_000 },
        );
        if (watches === "per-shard") {
          // Each replica caches only its own shards' ConfigMaps, and together all of them, once.
          await eventually(
            () => {
              const cached: string[] = [];
              for (const [id, c] of replicas) {
                const keys = caches
                  .get(id)!
                  .list()
                  .map((o) => keyOf(o))
                  .filter((k) => k.includes(`/${watches}-`));
                for (const k of keys)
                  expect({ k, id, own: c.heldShards().includes(shardOf(k, SHARDS)) }).toEqual({
                    k,
                    id,
                    own: true,
                  });
                cached.push(...keys);
              }
              expect(cached.sort()).toEqual(names.map((n) => `${ns.name}/${n}`).sort());
            },
            { timeout: 20_000 },
          );
          // Every unlabelled ConfigMap was labelled for its shard by a holder of that shard.
          const list = await core.listNamespacedConfigMap({
            namespace: ns.name,
            labelSelector: `suite=${suiteOf(watches)}`,
          });
          for (const cm of list.items.filter((c) => c.metadata?.name?.startsWith(`${watches}-`))) {
            const key = `${ns.name}/${cm.metadata!.name}`;
            expect({ key, label: cm.metadata?.labels?.[SHARD_LABEL] }).toEqual({
              key,
              label: shardLabelValue(shardOf(key, SHARDS), SHARDS),
            });
          }
          // (A replica may die between its label write and the answer: the label above is the record.)
          const evens = names.filter((_, i) => i % 2 === 0).map((n) => `${ns.name}/${n}`);
          expect(labelled.length).toBeGreaterThan(0);
          for (const { key } of labelled) expect(evens).toContain(key);
        }
      } finally {
        watch.stop();
      }
      expect(watch.overlaps).toEqual([]);

      // No duplicate write, by the apiserver's own record: one create per Secret,
      // and every create of an object (accepted or not) from a single replica.
      // The replicas stop first, and the log is read once it holds every create
      // (an event is logged as its response completes, not before the client sees it).
      await Promise.all(running.splice(0).map((c) => c.stop()));
      const tally = async () => {
        const creates = (await completedRequests(inject("auditLogPath"), auditFrom)).filter(
          (e) =>
            e.verb === "create" &&
            e.objectRef?.resource === "secrets" &&
            e.objectRef.namespace === ns.name,
        );
        const accepted = new Map<string, number>();
        // A create the apiserver answered 504 (its own timeout, on a loaded
        // machine) may still have been stored: it counts as landed, not accepted.
        const landed = new Set<string>();
        /** Per object, who attempted a create, in the order the apiserver received them. */
        const writers = new Map<string, { at: string; by: string; code: number }[]>();
        for (const e of creates) {
          const uri = (e as { requestURI?: string }).requestURI ?? "";
          const by = new URL(uri, "https://x").searchParams.get("fieldManager") ?? "?";
          const name = e.objectRef?.name ?? `?${by}`;
          const code = e.responseStatus?.code ?? 0;
          if (code < 300) accepted.set(name, (accepted.get(name) ?? 0) + 1);
          if (code < 300 || code === 504) landed.add(name);
          const list = writers.get(name) ?? [];
          list.push({ at: e.requestReceivedTimestamp ?? "", by, code });
          writers.set(name, list);
        }
        expect([...landed].filter((n) => n.startsWith(`${watches}-`)).length).toBe(80);
        return { accepted, writers };
      };
      const { accepted, writers } = await eventually(tally, { timeout: 30_000 });
      for (const [name, n] of accepted) expect({ name, n }).toEqual({ name, n: 1 });
      // Ownership of a key moves, it never alternates: once a replica has written
      // for a key, an earlier owner never writes for it again. A new owner whose
      // cache had not yet shown its predecessor's last create may repeat it: the
      // apiserver refuses that (409), so it is never a second object.
      for (const [name, list] of writers) {
        const order = list.sort((x, y) => x.at.localeCompare(y.at)).map((w) => w.by);
        const runs = order.filter((by, i) => i === 0 || by !== order[i - 1]);
        expect({ name, owners: runs }).toEqual({ name, owners: [...new Set(runs)] });
        for (const w of list.filter((x) => x.code >= 300))
          expect({ name, code: w.code === 504 ? 409 : w.code }).toEqual({ name, code: 409 });
      }
      // What the replicas saw agrees: the apiserver refused nothing but
      // AlreadyExists (or timed out itself: 504, retried like any transient error).
      expect(
        writes.filter((w) => !w.ok && !w.refused && w.status !== 409 && w.status !== 504),
      ).toEqual([]);
    },
    120_000,
  );

  it("lets writes outside a reconcile through only while holding shard 0, and none after stopping", async () => {
    const writes: Write[] = [];
    const a = replica("solo", writes);
    await eventually(() => expect(a.heldShards().length).toBe(SHARDS), { timeout: 10_000 });
    // Outside any reconcile: shard 0's holder may write (cluster-wide chores).
    expect(() => a.writeGate()).not.toThrow();
    await a.stop();
    expect(a.heldShards()).toEqual([]);
    expect(() => a.writeGate()).toThrow(NotLeaderError);
  });
});
