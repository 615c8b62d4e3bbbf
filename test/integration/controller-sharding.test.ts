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
import * as k8s from "@kubernetes/client-node";
import { Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { Controller } from "../../src/controller/controller.js";
import { apiStatus } from "../../src/controller/errors.js";
import { Informer, type KubeObject } from "../../src/controller/informer.js";
import { rawRequest } from "../../src/controller/raw-request.js";
import { shardOf } from "../../src/controller/shard.js";
import { gateWrites, NotLeaderError, notLeaderCause } from "../../src/controller/write-gate.js";
import { unlimited } from "../../src/kube/config.js";
import { silentLogger } from "../../src/observability/logger.js";
import { auditOffset, completedRequests } from "../support/audit-log.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";

// Connections kept alive, as the operator's are (a TLS handshake per lease
// renewal would make renewals, not the code under test, the slow part).
const kc = unlimited(kubeConfig());
const core = kc.makeApiClient(k8s.CoreV1Api);
const log = silentLogger();
const SHARDS = 8;
const SUITE = "sharded";
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

function replica(identity: string, writes: Write[]) {
  const informer = (resource: string) =>
    new Informer<KubeObject>({
      kubeConfig: kc,
      apiPath: "/api/v1",
      resource,
      namespaces: [ns.name],
      labelSelector: `suite=${SUITE}`,
      log,
    });
  const configMaps = informer("configmaps");
  const secrets = informer("secrets");
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
    ],
    reconcile: async (key, ctx) => {
      const [namespace, name] = key.split("/") as [string, string];
      if (!configMaps.get(key) || secrets.get(`${namespace}/${name}-out`)) return;
      // A little work between the decision and the write, as a real reconcile has.
      await new Promise((r) => setTimeout(r, 5));
      try {
        await rawRequest(writer, "POST", `/api/v1/namespaces/${namespace}/secrets`, {
          query: { fieldManager: identity },
          body: {
            metadata: { name: `${name}-out`, labels: { suite: SUITE, owner: name } },
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
      name: "shards",
      identity,
      shards: SHARDS,
      groupLabel: "test.sandboxing.dev/lease-group",
      leaseDurationMs: 3000,
      renewDeadlineMs: 2000,
      retryPeriodMs: 250,
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

let names: string[] = [];
describe("sharded Controller", () => {
  it("spreads shards, survives a dead replica and a new one, with no orphan and no duplicate write", async () => {
    const auditFrom = auditOffset(inject("auditLogPath"));
    const writes: Write[] = [];
    const replicas = new Map<string, Controller>();
    for (const id of ["a", "b", "c"]) replicas.set(id, replica(id, writes));
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

      names = Array.from({ length: 80 }, (_, i) => `cm-${i}`);
      const create = (name: string) =>
        core.createNamespacedConfigMap({
          namespace: ns.name,
          body: { metadata: { name, labels: { suite: SUITE } } },
        });
      await Promise.all(names.slice(0, 30).map(create));
      // c dies: no release, no drain; its shards are free only once their Leases expire.
      const dead = replicas.get("c")!;
      const deadShards = dead.heldShards();
      expect(deadShards.length).toBeGreaterThan(0);
      replicas.delete("c");
      running.splice(running.indexOf(dead), 1);
      await dead.stop({ release: false });
      await Promise.all(names.slice(30, 55).map(create));
      // d joins: a and b give up their surplus to it.
      replicas.set("d", replica("d", writes));
      await Promise.all(names.slice(55).map(create));

      // No orphan: every ConfigMap answered, the dead replica's keys included.
      await eventually(
        async () => {
          const list = await core.listNamespacedSecret({
            namespace: ns.name,
            labelSelector: `suite=${SUITE}`,
          });
          expect(list.items.map((s) => s.metadata?.name).sort()).toEqual(
            names.map((n) => `${n}-out`).sort(),
          );
        },
        { timeout: 30_000 },
      );
      const deadKeys = names.filter((n) => deadShards.includes(shardOf(`${ns.name}/${n}`, SHARDS)));
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
      /** Per object, who attempted a create, in the order the apiserver received them. */
      const writers = new Map<string, { at: string; by: string; code: number }[]>();
      for (const e of creates) {
        const uri = (e as { requestURI?: string }).requestURI ?? "";
        const by = new URL(uri, "https://x").searchParams.get("fieldManager") ?? "?";
        const name = e.objectRef?.name ?? `?${by}`;
        const code = e.responseStatus?.code ?? 0;
        if (code < 300) accepted.set(name, (accepted.get(name) ?? 0) + 1);
        const list = writers.get(name) ?? [];
        list.push({ at: e.requestReceivedTimestamp ?? "", by, code });
        writers.set(name, list);
      }
      expect(accepted.size).toBe(80);
      return { accepted, writers };
    };
    const { accepted, writers } = await eventually(tally, { timeout: 10_000 });
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
        expect({ name, code: w.code }).toEqual({ name, code: 409 });
    }
    // What the replicas saw agrees: the apiserver refused nothing but AlreadyExists.
    expect(writes.filter((w) => !w.ok && !w.refused && w.status !== 409)).toEqual([]);
  }, 120_000);

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
