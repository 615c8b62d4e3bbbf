// KindClient's own-write records against the real apiserver: a write's result
// is an echo to skip only when it is exactly what the writer decided from.
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KindClient } from "../../src/controller/kind-client.js";
import { OwnWrites } from "../../src/controller/own-writes.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";

const kc = kubeConfig();
const core = kc.makeApiClient(k8s.CoreV1Api);
let ns: Awaited<ReturnType<typeof testNamespace>>;

beforeAll(async () => {
  ns = await testNamespace(kc, "kind-client");
});
afterAll(async () => {
  await ns?.delete();
});

type ConfigMap = k8s.V1ConfigMap;

describe("KindClient's own writes", () => {
  it("a create and a patch pinned to its resourceVersion are echoes; an unpinned patch that lands on someone else's change is not", async () => {
    const writes = new OwnWrites();
    const client = new KindClient<ConfigMap>(
      kc,
      { group: "", version: "v1", plural: "configmaps" },
      writes,
    );
    const created = await client.create(ns.name, {
      metadata: { name: "cm", namespace: ns.name },
      data: { image: "busybox" },
    });
    expect(writes.isEcho(created)).toBe(true);

    // Someone else edits the object after we read it...
    await core.patchNamespacedConfigMap(
      { name: "cm", namespace: ns.name, body: { data: { image: "evil:latest" } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    // ...and our unpinned patch (a relabel decided from `created`) lands on their version.
    const relabelled = await client.mergePatch("cm", ns.name, {
      metadata: { labels: { owner: "us" } },
    });
    expect(relabelled.data?.image).toBe("evil:latest");
    expect(writes.isEcho(relabelled)).toBe(false);

    // A patch pinned to the version it was decided from is exactly that version plus ours.
    const pinned = await client.mergePatch("cm", ns.name, {
      metadata: { resourceVersion: relabelled.metadata!.resourceVersion, labels: { owner: "us2" } },
    });
    expect(writes.isEcho(pinned)).toBe(true);
  });
});
