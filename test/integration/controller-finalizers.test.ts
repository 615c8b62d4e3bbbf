// Finalizers against the real apiserver: add and remove, no clobbering of a
// concurrent writer's finalizer (the JSON patch's test op), no false conflict
// on unrelated changes, and deletion waiting for the finalizer.
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConflictError, isNotFound } from "../../src/controller/errors.js";
import { Finalizers } from "../../src/controller/finalizers.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";
import { SandboxClient } from "../support/sandboxes.js";

const kc = kubeConfig();
const objects = kc.makeApiClient(k8s.CustomObjectsApi);
const sandboxes = { group: "sandboxing.dev", version: "v1alpha1", plural: "sandboxes" };
const mergePatch = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);
let ns: Awaited<ReturnType<typeof testNamespace>>;

beforeAll(async () => {
  ns = await testNamespace(kc, "ctl-finalizers");
});
afterAll(async () => {
  await ns?.delete();
});

interface Obj {
  metadata: { name: string; namespace: string; finalizers?: string[]; deletionTimestamp?: string };
}

const get = (name: string) =>
  objects.getNamespacedCustomObject({ ...sandboxes, namespace: ns.name, name }) as Promise<Obj>;
const create = (name: string) => new SandboxClient(kc, ns.name).create(name, { image: "busybox" });

describe("Finalizers", () => {
  const finalizers = new Finalizers(kc, sandboxes);

  it("adds and removes a finalizer; deletion waits for its removal", async () => {
    await create("fin");
    await finalizers.add(await get("fin"), "test.dev/ours");
    expect((await get("fin")).metadata.finalizers).toEqual(["test.dev/ours"]);
    await finalizers.add(await get("fin"), "test.dev/ours"); // present: no-op
    expect((await get("fin")).metadata.finalizers).toEqual(["test.dev/ours"]);

    await objects.deleteNamespacedCustomObject({ ...sandboxes, namespace: ns.name, name: "fin" });
    const deleting = await get("fin");
    expect(deleting.metadata.deletionTimestamp).toBeDefined();
    await finalizers.remove(deleting, "test.dev/ours");
    await eventually(async () => {
      const err = await get("fin").then(
        () => undefined,
        (e) => e,
      );
      expect(isNotFound(err)).toBe(true);
    });
  });

  it("never clobbers a finalizer another writer added meanwhile", async () => {
    await create("race");
    await finalizers.add(await get("race"), "test.dev/ours");
    const cached = await get("race");
    await objects.patchNamespacedCustomObject(
      {
        ...sandboxes,
        namespace: ns.name,
        name: "race",
        body: { metadata: { finalizers: ["test.dev/ours", "other.dev/theirs"] } },
      },
      mergePatch,
    );
    await expect(finalizers.remove(cached, "test.dev/ours")).rejects.toBeInstanceOf(ConflictError);
    await expect(
      finalizers.add({ metadata: { ...cached.metadata, finalizers: undefined } }, "x.dev/y"),
    ).rejects.toBeInstanceOf(ConflictError);
    expect((await get("race")).metadata.finalizers).toEqual(["test.dev/ours", "other.dev/theirs"]);

    // With a fresh view it goes through, and an unrelated change does not get in the way.
    const fresh = await get("race");
    await objects.patchNamespacedCustomObject(
      {
        ...sandboxes,
        namespace: ns.name,
        name: "race",
        body: { metadata: { labels: { unrelated: "change" } } },
      },
      mergePatch,
    );
    await finalizers.remove(fresh, "test.dev/ours");
    expect((await get("race")).metadata.finalizers).toEqual(["other.dev/theirs"]);
    await finalizers.remove(await get("race"), "other.dev/theirs");
  });
});
