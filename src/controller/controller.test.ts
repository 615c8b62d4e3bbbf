import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../observability/logger.js";
import { Controller } from "./controller.js";
import type { EventHandler, KubeObject, ObjectSource } from "./informer.js";
import { OwnWrites } from "./own-writes.js";

/** A source whose events the test fires by hand (the controller only subscribes and reads). */
class FakeSource implements ObjectSource<KubeObject> {
  readonly handlers: EventHandler<KubeObject>[] = [];
  on(h: EventHandler<KubeObject>) {
    this.handlers.push(h);
  }
  start() {}
  async stop() {}
  hasSynced() {
    return true;
  }
  async upToDate() {}
  problems() {
    return [];
  }
  get() {
    return undefined;
  }
  list() {
    return [];
  }
  add(obj: KubeObject) {
    for (const h of this.handlers) h.add?.(obj);
  }
  update(obj: KubeObject, old: KubeObject) {
    for (const h of this.handlers) h.update?.(obj, old);
  }
  delete(obj: KubeObject) {
    for (const h of this.handlers) h.delete?.(obj);
  }
}

const obj = (name: string, rv: string, owner?: string): KubeObject => ({
  metadata: { namespace: "ns", name, resourceVersion: rv, labels: owner ? { owner } : {} },
});

describe("Controller secondaries", () => {
  it("enqueues only updates the secondary calls changed, and counts events per source", async () => {
    const primary = new FakeSource();
    const secondary = new FakeSource();
    const reconciled: string[] = [];
    const registry = new Registry();
    const controller = new Controller({
      name: "t",
      primary,
      secondaries: [
        {
          name: "children",
          informer: secondary,
          primaryKey: (o) =>
            o.metadata?.labels?.owner ? `ns/${o.metadata.labels.owner}` : undefined,
          // Only a change of the "rv" parity matters here: a stand-in for a real comparison.
          changed: (o, old) =>
            Number(o.metadata?.resourceVersion) % 2 !== Number(old.metadata?.resourceVersion) % 2,
        },
      ],
      reconcile: async (key) => {
        reconciled.push(key);
      },
      concurrency: 1,
      registry,
      metricPrefix: "test",
      log: silentLogger(),
    });
    controller.start();
    await new Promise((r) => setTimeout(r, 10));

    secondary.update(obj("c", "3", "a"), obj("c", "1", "a")); // no change that matters
    await new Promise((r) => setTimeout(r, 20));
    expect(reconciled).toEqual([]);

    secondary.update(obj("c", "4", "a"), obj("c", "3", "a")); // matters
    await new Promise((r) => setTimeout(r, 20));
    expect(reconciled).toEqual(["ns/a"]);

    secondary.delete(obj("d", "5")); // no owner: nothing to enqueue
    secondary.delete(obj("c", "6", "b"));
    await new Promise((r) => setTimeout(r, 20));
    expect(reconciled).toEqual(["ns/a", "ns/b"]);

    const text = await registry.metrics();
    expect(text).toContain(
      'test_watch_events_total{controller="t",source="children",result="received"} 4',
    );
    expect(text).toContain(
      'test_watch_events_total{controller="t",source="children",result="enqueued"} 2',
    );
    await controller.stop();
  });

  it("enqueues nothing for the echo of its own write, and everything else as before", async () => {
    const primary = new FakeSource();
    const secondary = new FakeSource();
    const ownWrites = new OwnWrites();
    const reconciled: string[] = [];
    const registry = new Registry();
    const controller = new Controller({
      name: "t",
      primary,
      secondaries: [
        {
          name: "children",
          informer: secondary,
          primaryKey: (o) =>
            o.metadata?.labels?.owner ? `ns/${o.metadata.labels.owner}` : undefined,
          ownWrites,
        },
      ],
      reconcile: async (key) => {
        reconciled.push(key);
      },
      concurrency: 1,
      registry,
      metricPrefix: "test",
      log: silentLogger(),
    });
    controller.start();
    const settle = () => new Promise((r) => setTimeout(r, 20));
    await settle();

    ownWrites.record(obj("c", "10", "a")); // our create returned version 10
    secondary.add(obj("c", "10", "a")); // its echo
    await settle();
    expect(reconciled).toEqual([]);

    secondary.update(obj("c", "11", "a"), obj("c", "10", "a")); // someone else's change
    await settle();
    expect(reconciled).toEqual(["ns/a"]);

    ownWrites.record(obj("c", "13", "a")); // our replace returned 13 ...
    secondary.update(obj("c", "12", "a"), obj("c", "11", "a")); // ... after a change of someone else's
    await settle();
    expect(reconciled).toEqual(["ns/a", "ns/a"]);
    secondary.update(obj("c", "13", "a"), obj("c", "12", "a")); // the echo
    await settle();
    expect(reconciled).toEqual(["ns/a", "ns/a"]);

    // Another object at the version we wrote of "c" is no echo (versions are per object).
    ownWrites.record(obj("c", "14", "a"));
    secondary.add(obj("d", "14", "b"));
    await settle();
    expect(reconciled).toEqual(["ns/a", "ns/a", "ns/b"]);
    expect(await registry.metrics()).toContain(
      'test_watch_events_total{controller="t",source="children",result="echo"} 2',
    );
    await controller.stop();
  });
});
