// The status writer against the real apiserver: one write for a change, none
// for an unchanged status (counted in the apiserver's audit log), observedGeneration,
// removed fields, no second write from a view our own write made stale, and the
// typed errors for someone else's newer write and a missing object.
import * as k8s from "@kubernetes/client-node";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConflictError, NotFoundError } from "../../src/controller/errors.js";
import { type StatusWriteNotice, StatusWriter } from "../../src/controller/status-writer.js";
import { writesBy } from "../support/audit.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { SandboxClient } from "../support/sandboxes.js";

const kc = kubeConfig();
const objects = kc.makeApiClient(k8s.CustomObjectsApi);
const sandboxes = { group: "sandboxing.dev", version: "v1alpha1", plural: "sandboxes" };
let ns: Awaited<ReturnType<typeof testNamespace>>;

beforeAll(async () => {
  ns = await testNamespace(kc, "ctl-status");
});
afterAll(async () => {
  await ns?.delete();
});

interface Obj {
  metadata: { name: string; namespace: string; resourceVersion: string; generation: number };
  status?: { phase?: string; conditions?: object[]; observedGeneration?: number; message?: string };
}

const get = (name: string) =>
  objects.getNamespacedCustomObject({ ...sandboxes, namespace: ns.name, name }) as Promise<Obj>;

const create = (name: string) => new SandboxClient(kc, ns.name).create(name, { image: "busybox" });

const ready = {
  type: "Ready",
  status: "False",
  reason: "Creating",
  message: "",
  lastTransitionTime: "2030-01-01T00:00:00Z",
};
const expired = {
  type: "Expired",
  status: "False",
  reason: "NotExpired",
  message: "",
  lastTransitionTime: "2030-01-01T00:00:00Z",
};

describe("StatusWriter", () => {
  it("writes a changed status once, and an unchanged one never", async () => {
    await create("once");
    const registry = new Registry();
    const writer = new StatusWriter(kc, sandboxes, registry, "test");
    const before = await writesBy("admin", ns.name, "sandboxes");

    const status = { phase: "Pending", message: "starting", conditions: [ready, expired] };
    expect(await writer.write(await get("once"), status)).toBe("written");
    const written = await get("once");
    expect(written.status).toEqual({ ...status, observedGeneration: written.metadata.generation });

    // The same status again, conditions in another order: nothing to write.
    for (let i = 0; i < 3; i++) {
      expect(await writer.write(written, { ...status, conditions: [expired, ready] })).toBe(
        "unchanged",
      );
    }
    expect(writer.writes).toBe(1);
    expect(await writesBy("admin", ns.name, "sandboxes")).toBe(before + 1);
    expect(await registry.getSingleMetricAsString("test_status_writes_total")).toContain(
      'test_status_writes_total{resource="sandboxes"} 1',
    );

    // Fields the new status leaves out are removed.
    expect(await writer.write(written, { phase: "Running" })).toBe("written");
    expect((await get("once")).status).toEqual({ phase: "Running", observedGeneration: 1 });
  });

  it("waits for the cache after its own write, refuses a view someone else made stale (ConflictError), and reports a missing object", async () => {
    await create("stale");
    const writer = new StatusWriter(kc, sandboxes, new Registry(), "test");
    const before = await writesBy("admin", ns.name, "sandboxes");
    const stale = await get("stale");
    expect(await writer.write(stale, { phase: "Pending" })).toBe("written");
    // Our own write made this view stale: nothing is sent (it would only earn a 409).
    expect(await writer.write(stale, { phase: "Failed" })).toBe("awaitingCache");
    expect(await writesBy("admin", ns.name, "sandboxes")).toBe(before + 1);
    expect((await get("stale")).status?.phase).toBe("Pending");

    // From the version our write produced, writes go through again.
    const fresh = await get("stale");
    expect(await writer.write(fresh, { phase: "Running" })).toBe("written");

    // Someone else's write makes a view stale: the precondition refuses ours.
    const seen = await get("stale");
    const other = new StatusWriter(kc, sandboxes, new Registry(), "other");
    expect(await other.write(seen, { phase: "Succeeded" })).toBe("written");
    const mine = new StatusWriter(kc, sandboxes, new Registry(), "mine");
    await expect(mine.write(seen, { phase: "Failed" })).rejects.toBeInstanceOf(ConflictError);
    expect((await get("stale")).status?.phase).toBe("Succeeded");

    const missing = { ...stale, metadata: { ...stale.metadata, name: "missing" } };
    await expect(writer.write(missing, { phase: "Failed" })).rejects.toBeInstanceOf(NotFoundError);
    expect(writer.writes).toBe(2);
  });

  it("hands out the object its own write made while the cache still shows the version it wrote from", async () => {
    await create("newest");
    const writer = new StatusWriter(kc, sandboxes, new Registry(), "test");
    const before = await writesBy("admin", ns.name, "sandboxes");
    const cached = await get("newest");
    // Nothing written yet: the cache's view is the newest.
    expect(writer.newest(cached)).toBe(cached);
    expect(await writer.write(cached, { phase: "Pending" })).toBe("written");
    const stored = await get("newest");
    const newest = writer.newest(cached);
    expect(newest.metadata.resourceVersion).toBe(stored.metadata.resourceVersion);
    expect(newest.status).toEqual(stored.status);
    // From it, the next status is written at once (no wait for the watch event),
    // and the same status again is no write at all.
    expect(await writer.write(newest, { phase: "Pending" })).toBe("unchanged");
    expect(await writer.write(newest, { phase: "Running" })).toBe("written");
    expect((await get("newest")).status?.phase).toBe("Running");
    expect(await writesBy("admin", ns.name, "sandboxes")).toBe(before + 2);
    // Once the cache shows our last write, its view is the newest again.
    const moved = await get("newest");
    expect(writer.newest(moved)).toBe(moved);
  });

  it("tells its listeners of each write as it is sent, then what the apiserver answered", async () => {
    await create("told");
    const writer = new StatusWriter(kc, sandboxes, new Registry(), "test");
    const notices: StatusWriteNotice[] = [];
    writer.listen((n) => notices.push(n));
    const seen = await get("told");
    expect(await writer.write(seen, { phase: "Pending" })).toBe("written");
    const stored = await get("told");
    expect(notices.map((n) => n.type)).toEqual(["sending", "written"]);
    expect(notices[0]).toEqual({
      type: "sending",
      key: `${ns.name}/told`,
      resourceVersion: seen.metadata.resourceVersion,
      status: { phase: "Pending", observedGeneration: seen.metadata.generation },
    });
    const written = notices[1] as Extract<StatusWriteNotice, { type: "written" }>;
    expect(written.resourceVersion).toBe(seen.metadata.resourceVersion);
    expect(written.written?.metadata.resourceVersion).toBe(stored.metadata.resourceVersion);

    // Refused (a stale view: someone else wrote since): `failed`, nothing stored.
    const other = new StatusWriter(kc, sandboxes, new Registry(), "other");
    expect(await other.write(stored, { phase: "Succeeded" })).toBe("written");
    notices.length = 0;
    await expect(writer.write(stored, { phase: "Failed" })).rejects.toBeInstanceOf(ConflictError);
    expect(notices.map((n) => n.type)).toEqual(["sending", "failed"]);
    expect((await get("told")).status?.phase).toBe("Succeeded");
    // Nothing sent, nothing told.
    notices.length = 0;
    expect(await writer.write(await get("told"), { phase: "Succeeded" })).toBe("unchanged");
    expect(notices).toEqual([]);
  });
});
