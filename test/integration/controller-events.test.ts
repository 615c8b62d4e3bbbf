// The event recorder against the real apiserver: repeats of one event fold into
// one events.k8s.io/v1 Event whose series count grows, at a bounded number of
// API writes (counted in the audit log); recording never throws.
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventRecorder } from "../../src/controller/events.js";
import { rawRequest } from "../../src/controller/raw-request.js";
import { silentLogger } from "../../src/observability/logger.js";
import { writesBy } from "../support/audit.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";

const kc = kubeConfig();
const core = kc.makeApiClient(k8s.CoreV1Api);
let ns: Awaited<ReturnType<typeof testNamespace>>;

beforeAll(async () => {
  ns = await testNamespace(kc, "ctl-events");
});
afterAll(async () => {
  await ns?.delete();
});

interface Event {
  reason: string;
  note: string;
  type: string;
  action: string;
  reportingController: string;
  regarding: { kind: string; name: string; uid: string };
  series?: { count: number };
}

async function eventsAbout(name: string): Promise<Event[]> {
  const list = await rawRequest<{ items: Event[] }>(
    kc,
    "GET",
    `/apis/events.k8s.io/v1/namespaces/${ns.name}/events`,
  );
  return list.items.filter((e) => e.regarding.name === name);
}

async function configMap(name: string) {
  const cm = await core.createNamespacedConfigMap({
    namespace: ns.name,
    body: { metadata: { name } },
  });
  return { apiVersion: "v1", kind: "ConfigMap", metadata: cm.metadata! };
}

const recorder = (flushMs?: number) =>
  new EventRecorder({
    kubeConfig: kc,
    component: "test-controller",
    instance: "replica-0",
    log: silentLogger(),
    flushMs,
  });

describe("EventRecorder", () => {
  it("folds ten repeats into one Event with a series count, in two API writes", async () => {
    const events = recorder();
    const obj = await configMap("flapping");
    for (let i = 0; i < 10; i++)
      events.record(obj, "Warning", "BackOff", "restarting failed container");
    await events.flush();

    const [event, ...others] = await eventsAbout("flapping");
    expect(others).toEqual([]);
    expect(event).toMatchObject({
      type: "Warning",
      reason: "BackOff",
      action: "BackOff",
      note: "restarting failed container",
      reportingController: "test-controller",
      regarding: { kind: "ConfigMap", name: "flapping", uid: obj.metadata.uid },
      series: { count: 10 },
    });
    expect(await writesBy("admin", ns.name, "events")).toBe(2); // one create, one count update

    // A different message is a different event.
    events.record(obj, "Normal", "Recovered", "running again");
    await events.flush();
    expect(await eventsAbout("flapping")).toHaveLength(2);
  });

  it("writes a grown count back on its own after the flush interval", async () => {
    const events = recorder(200);
    const obj = await configMap("periodic");
    for (let i = 0; i < 3; i++) events.record(obj, "Normal", "Synced", "in sync");
    await eventually(async () => expect((await eventsAbout("periodic"))[0]?.series?.count).toBe(3));
  });

  it("never throws, even when the API refuses the event", async () => {
    const events = recorder();
    const ghost = {
      kind: "ConfigMap",
      metadata: { name: "ghost", namespace: "no-such-namespace", uid: "x" },
    };
    expect(() => events.record(ghost, "Normal", "Reason", "message")).not.toThrow();
    await expect(events.flush()).resolves.toBeUndefined();
  });
});
