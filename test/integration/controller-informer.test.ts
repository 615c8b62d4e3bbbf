// The generic informer against the real apiserver: initial list, watch events,
// trimming, re-list after a real "410 Gone", the no-event watchdog, namespaces
// and label selectors, and resilience to failing lists, bad objects and handlers.
import * as k8s from "@kubernetes/client-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  Informer,
  type Informer as InformerT,
  type KubeObject,
} from "../../src/controller/informer.js";
import { listRaw } from "../../src/controller/raw-request.js";
import { silentLogger } from "../../src/observability/logger.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";
import { SandboxClient } from "../support/sandboxes.js";

const kc = kubeConfig();
const core = kc.makeApiClient(k8s.CoreV1Api);
const objects = kc.makeApiClient(k8s.CustomObjectsApi);
const log = silentLogger();
let ns: Awaited<ReturnType<typeof testNamespace>>;
let ns2: Awaited<ReturnType<typeof testNamespace>>;
const started: InformerT<KubeObject>[] = [];

beforeAll(async () => {
  [ns, ns2] = await Promise.all([
    testNamespace(kc, "ctl-informer"),
    testNamespace(kc, "ctl-informer2"),
  ]);
});
afterEach(async () => {
  await Promise.all(started.splice(0).map((i) => i.stop()));
});
afterAll(async () => {
  await Promise.all([ns?.delete(), ns2?.delete()]);
});

type ConfigMap = KubeObject & { data?: Record<string, string> };

/** An informer plus a log of the events its handlers saw, as "type key". */
function informer<T extends KubeObject>(
  opts: Partial<ConstructorParameters<typeof Informer<T>>[0]>,
) {
  const inf = new Informer<T>({
    kubeConfig: kc,
    apiPath: "/api/v1",
    resource: "configmaps",
    namespaces: [ns.name],
    log,
    ...opts,
  });
  const seen: string[] = [];
  const name = (o: KubeObject) => o.metadata?.name;
  inf.on({
    add: (o) => seen.push(`add ${name(o)}`),
    update: (o) => seen.push(`update ${name(o)}`),
    delete: (o) => seen.push(`delete ${name(o)}`),
  });
  started.push(inf as unknown as InformerT<KubeObject>);
  return { inf, seen };
}

const configMap = (name: string, labels: Record<string, string> = {}, namespace = ns.name) =>
  core.createNamespacedConfigMap({
    namespace,
    body: { metadata: { name, labels }, data: { v: "1" } },
  });

const sandboxes = { group: "sandboxing.dev", version: "v1alpha1", plural: "sandboxes" };
const sandbox = (name: string) => new SandboxClient(kc, ns.name).create(name, { image: "busybox" });

describe("Informer", () => {
  it("lists, then sees adds, updates and deletes, caching trimmed objects", async () => {
    await core.createNamespacedConfigMap({
      namespace: ns.name,
      body: {
        metadata: {
          name: "pre",
          labels: { suite: "basic" },
          annotations: { "kubectl.kubernetes.io/last-applied-configuration": "{}", keep: "me" },
        },
      },
    });
    const { inf, seen } = informer<ConfigMap>({ labelSelector: "suite=basic" });
    inf.start();
    await inf.synced;
    expect(inf.hasSynced()).toBe(true);
    const pre = inf.get(`${ns.name}/pre`)!;
    expect(pre.metadata?.managedFields).toBeUndefined();
    expect(pre.metadata?.annotations).toEqual({ keep: "me" });
    expect(seen).toEqual(["add pre"]);

    await configMap("b", { suite: "basic" });
    await eventually(() => expect(inf.get(`${ns.name}/b`)).toBeDefined());
    await core.patchNamespacedConfigMap(
      { namespace: ns.name, name: "b", body: { data: { v: "2" } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    await eventually(() => expect(inf.get(`${ns.name}/b`)?.data?.v).toBe("2"));
    expect(inf.get(`${ns.name}/b`)?.metadata?.managedFields).toBeUndefined();
    await core.deleteNamespacedConfigMap({ namespace: ns.name, name: "b" });
    await eventually(() => expect(inf.get(`${ns.name}/b`)).toBeUndefined());
    expect(seen).toEqual(["add pre", "add b", "update b", "delete b"]);
    expect(inf.list().map((o) => o.metadata?.name)).toEqual(["pre"]);
  });

  it("caches what its transform keeps, from the list and from watch events", async () => {
    await core.createNamespacedConfigMap({
      namespace: ns.name,
      body: { metadata: { name: "t1", labels: { suite: "transform" } }, data: { a: "1", b: "x" } },
    });
    const { inf } = informer<ConfigMap>({
      labelSelector: "suite=transform",
      transform: (o) => ({ metadata: o.metadata, data: { a: o.data?.a ?? "" } }),
    });
    inf.start();
    await inf.synced;
    expect(inf.get(`${ns.name}/t1`)?.data).toEqual({ a: "1" });
    expect(inf.get(`${ns.name}/t1`)?.metadata?.managedFields).toBeUndefined();
    await core.createNamespacedConfigMap({
      namespace: ns.name,
      body: { metadata: { name: "t2", labels: { suite: "transform" } }, data: { a: "2", b: "y" } },
    });
    await eventually(() => expect(inf.get(`${ns.name}/t2`)?.data).toEqual({ a: "2" }));
  });

  it("re-lists after a real 410 Gone, emitting deletes and updates for what changed meanwhile", async () => {
    await Promise.all([sandbox("gone-a"), sandbox("gone-b")]);
    const path = `/apis/sandboxing.dev/v1alpha1/namespaces/${ns.name}/sandboxes`;
    const snapshot = await listRaw<KubeObject>(kc, path, {});
    // While "we" were not watching: one deleted, one changed, one created.
    await objects.deleteNamespacedCustomObject({
      ...sandboxes,
      namespace: ns.name,
      name: "gone-a",
    });
    await objects.patchNamespacedCustomObject(
      {
        ...sandboxes,
        namespace: ns.name,
        name: "gone-b",
        body: { metadata: { labels: { changed: "yes" } } },
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    await sandbox("gone-c");

    // The first list claims resourceVersion "1": older than anything the
    // apiserver's watch cache for Sandboxes holds, so the watch gets a real
    // ERROR event "410 Expired: too old resource version" — as after etcd
    // compaction. Later lists are real.
    let lists = 0;
    const { inf, seen } = informer<KubeObject>({
      apiPath: "/apis/sandboxing.dev/v1alpha1",
      resource: "sandboxes",
      list: async (scope) =>
        lists++ === 0
          ? { items: structuredClone(snapshot.items), metadata: { resourceVersion: "1" } }
          : listRaw(kc, path, scope),
    });
    inf.start();
    await eventually(() => expect(inf.stats.relistsAfterGone).toBe(1));
    await eventually(() => expect(seen).toHaveLength(5));
    expect(seen).toEqual([
      "add gone-a",
      "add gone-b",
      "delete gone-a",
      "update gone-b",
      "add gone-c",
    ]);
    expect(inf.get(`${ns.name}/gone-b`)?.metadata?.labels).toEqual({ changed: "yes" });
    expect(
      inf
        .list()
        .map((o) => o.metadata?.name)
        .sort(),
    ).toEqual(["gone-b", "gone-c"]);
    // And it watches on from the new list.
    await sandbox("gone-d");
    await eventually(() => expect(seen.at(-1)).toBe("add gone-d"));
  });

  it("restarts a watch that stays silent past the watchdog, and keeps seeing changes", async () => {
    const { inf, seen } = informer<ConfigMap>({ labelSelector: "suite=watchdog", watchdogMs: 700 });
    inf.start();
    await inf.synced;
    await eventually(
      () => {
        expect(inf.stats.watchdogRestarts).toBeGreaterThanOrEqual(1);
        expect(inf.stats.watches).toBeGreaterThanOrEqual(2);
      },
      { timeout: 5000 },
    );
    expect(inf.stats.lists).toBe(1); // resumed from its resourceVersion, no re-list
    await configMap("after-watchdog", { suite: "watchdog" });
    await eventually(() => expect(seen).toEqual(["add after-watchdog"]));
  });

  it("watches several namespaces with a label selector", async () => {
    await Promise.all([
      configMap("x1", { team: "a" }),
      configMap("x2", { team: "b" }),
      configMap("y1", { team: "a" }, ns2.name),
    ]);
    const { inf } = informer<ConfigMap>({
      namespaces: [ns.name, ns2.name],
      labelSelector: "team=a",
    });
    inf.start();
    await inf.synced;
    await configMap("y2", { team: "a" }, ns2.name);
    await eventually(() =>
      expect(
        inf
          .list()
          .map((o) => o.metadata?.name)
          .sort(),
      ).toEqual(["x1", "y1", "y2"]),
    );
    expect(inf.get(`${ns2.name}/y1`)).toBeDefined();
  });

  it("retries failed lists with backoff, skips malformed objects and survives throwing handlers", async () => {
    let failures = 2;
    const path = `/api/v1/namespaces/${ns.name}/configmaps`;
    const { inf, seen } = informer<ConfigMap>({
      labelSelector: "suite=robust",
      backoff: { baseMs: 20, maxMs: 100 },
      list: async (scope) => {
        if (failures-- > 0) throw new Error("apiserver unavailable");
        const real = await listRaw<ConfigMap>(kc, path, scope);
        return { ...real, items: [null, {}, { metadata: {} }, ...real.items] as ConfigMap[] };
      },
    });
    inf.on({
      add: () => {
        throw new Error("handler bug");
      },
    });
    inf.start();
    await inf.synced;
    expect(inf.stats.errors).toBe(2);
    expect(inf.list()).toEqual([]);
    await configMap("robust", { suite: "robust" });
    await eventually(() => expect(seen).toEqual(["add robust"]));
  });
});
