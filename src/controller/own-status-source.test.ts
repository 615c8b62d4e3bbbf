import { describe, expect, it } from "vitest";
import type { EventHandler, KubeObject, ObjectSource } from "./informer.js";
import { OWN_STATUS_MAX_MS, withOwnStatusWrites } from "./own-status-source.js";
import type { StatusWriteFeed, StatusWriteNotice } from "./status-writer.js";

type Obj = KubeObject & { metadata: { resourceVersion?: string }; status?: { phase?: string } };

/** A cache fed by hand (a pure test of the overlay; the real informer is tested elsewhere). */
function fakeSource(objs: Obj[]) {
  const cache = new Map(objs.map((o) => [`${o.metadata!.namespace}/${o.metadata!.name}`, o]));
  const handlers: EventHandler<Obj>[] = [];
  const source: ObjectSource<Obj> = {
    on: (h) => handlers.push(h),
    start: () => {},
    stop: async () => {},
    hasSynced: () => true,
    upToDate: async () => {},
    problems: () => [],
    get: (k) => cache.get(k),
    list: () => [...cache.values()],
  };
  /** A watch event: the cache changes, then handlers run. */
  const event = (o: Obj) => {
    const key = `${o.metadata!.namespace}/${o.metadata!.name}`;
    const old = cache.get(key)!;
    cache.set(key, o);
    for (const h of handlers) h.update?.(o, old);
  };
  return { source, event };
}

function fakeFeed() {
  const listeners = new Set<(n: StatusWriteNotice) => void>();
  const feed: StatusWriteFeed = {
    listen: (l) => {
      listeners.add(l);
      return () => void listeners.delete(l);
    },
  };
  const tell = (n: StatusWriteNotice) => {
    for (const l of listeners) l(n);
  };
  return { feed, tell, listening: () => listeners.size };
}

const obj = (rv: string, phase: string): Obj => ({
  metadata: { namespace: "ns", name: "a", resourceVersion: rv },
  status: { phase },
});

function setup() {
  const { source, event } = fakeSource([obj("1", "Pending")]);
  const { feed, tell, listening } = fakeFeed();
  let t = 1000;
  const view = withOwnStatusWrites(source, feed, () => t);
  const seen: { phase?: string; old?: string }[] = [];
  view.on({ update: (o, old) => seen.push({ phase: o.status?.phase, old: old.status?.phase }) });
  return { view, event, tell, seen, listening, advance: (ms: number) => (t += ms) };
}

describe("withOwnStatusWrites", () => {
  it("shows a status being written at once, and tells the handlers", () => {
    const { view, tell, seen } = setup();
    tell({ type: "sending", key: "ns/a", resourceVersion: "1", status: { phase: "Running" } });
    expect(view.get("ns/a")?.status?.phase).toBe("Running");
    expect(view.list().map((o) => o.status?.phase)).toEqual(["Running"]);
    expect(seen).toEqual([{ phase: "Running", old: "Pending" }]);
  });

  it("shows the stored object once written, until the cache moves on", () => {
    const { view, tell, event, seen } = setup();
    tell({ type: "sending", key: "ns/a", resourceVersion: "1", status: { phase: "Running" } });
    tell({ type: "written", key: "ns/a", resourceVersion: "1", written: obj("2", "Running") });
    expect(view.get("ns/a")?.metadata?.resourceVersion).toBe("2");
    event(obj("2", "Running")); // the write's own watch event
    expect(view.get("ns/a")?.metadata?.resourceVersion).toBe("2");
    event(obj("3", "Failed")); // someone else's change: the cache is the truth
    expect(view.get("ns/a")?.status?.phase).toBe("Failed");
    expect(seen.map((s) => s.phase)).toEqual(["Running", "Running", "Running", "Failed"]);
  });

  it("a failed write shows what is stored again, and tells the handlers", () => {
    const { view, tell, seen } = setup();
    tell({ type: "sending", key: "ns/a", resourceVersion: "1", status: { phase: "Running" } });
    tell({ type: "failed", key: "ns/a", resourceVersion: "1" });
    expect(view.get("ns/a")?.status?.phase).toBe("Pending");
    expect(seen).toEqual([
      { phase: "Running", old: "Pending" },
      { phase: "Pending", old: "Running" },
    ]);
  });

  it("ignores a write from a version the cache no longer holds", () => {
    const { view, tell, event, seen } = setup();
    event(obj("2", "Pending"));
    tell({ type: "sending", key: "ns/a", resourceVersion: "1", status: { phase: "Running" } });
    expect(view.get("ns/a")?.status?.phase).toBe("Pending");
    expect(seen).toHaveLength(1); // the watch event only
  });

  it("lets go after OWN_STATUS_MAX_MS (a watch event that never came)", () => {
    const { view, tell, advance } = setup();
    tell({ type: "sending", key: "ns/a", resourceVersion: "1", status: { phase: "Running" } });
    advance(OWN_STATUS_MAX_MS);
    expect(view.get("ns/a")?.status?.phase).toBe("Pending");
  });

  it("shows a second write made from the first one's result before the cache caught up", () => {
    const { view, tell, seen } = setup();
    tell({ type: "sending", key: "ns/a", resourceVersion: "1", status: { phase: "Starting" } });
    tell({ type: "written", key: "ns/a", resourceVersion: "1", written: obj("2", "Starting") });
    tell({ type: "sending", key: "ns/a", resourceVersion: "2", status: { phase: "Running" } });
    expect(view.get("ns/a")?.status?.phase).toBe("Running");
    // Refused: back to the first write's result, which is stored.
    tell({ type: "failed", key: "ns/a", resourceVersion: "2" });
    expect(view.get("ns/a")?.metadata?.resourceVersion).toBe("2");
    expect(view.get("ns/a")?.status?.phase).toBe("Starting");
    expect(seen.map((s) => s.phase)).toEqual(["Starting", "Starting", "Running", "Starting"]);
  });

  it("after a refusal, shows the next write from the same version only once it is answered", () => {
    const { view, tell, seen } = setup();
    tell({ type: "sending", key: "ns/a", resourceVersion: "1", status: { phase: "Running" } });
    tell({ type: "failed", key: "ns/a", resourceVersion: "1" });
    // The retry: refused again, nothing flips.
    tell({ type: "sending", key: "ns/a", resourceVersion: "1", status: { phase: "Running" } });
    expect(view.get("ns/a")?.status?.phase).toBe("Pending");
    tell({ type: "failed", key: "ns/a", resourceVersion: "1" });
    expect(seen).toHaveLength(2);
    // The retry that lands shows at once.
    tell({ type: "sending", key: "ns/a", resourceVersion: "1", status: { phase: "Running" } });
    tell({ type: "written", key: "ns/a", resourceVersion: "1", written: obj("2", "Running") });
    expect(view.get("ns/a")?.status?.phase).toBe("Running");
    expect(seen.map((s) => s.phase)).toEqual(["Running", "Pending", "Running"]);
  });

  it("stops following the writer when stopped, and shows the cache alone", async () => {
    const { view, tell, seen, listening } = setup();
    tell({ type: "sending", key: "ns/a", resourceVersion: "1", status: { phase: "Running" } });
    expect(listening()).toBe(1);
    await view.stop();
    expect(listening()).toBe(0);
    expect(view.get("ns/a")?.status?.phase).toBe("Pending");
    tell({ type: "sending", key: "ns/a", resourceVersion: "1", status: { phase: "Failed" } });
    expect(seen).toHaveLength(1);
  });
});
