// The shell around decideIdle, with its I/O given as fakes (the real reads
// and patches run in test/docker/idle.test.ts).
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { createLogger } from "../observability/logger.js";
import { formatDuration, IdleSuspender } from "./suspender.js";
import { idleSubjectOf } from "./view.js";

const T0 = Date.parse("2030-01-01T00:00:00Z");

function harness(reading: () => Promise<{ idleMs: number; inFlight: number; calls: number }>) {
  let now = T0;
  const sandbox = {
    metadata: { namespace: "ns", name: "a", uid: "u1" },
    spec: { image: "x", idleTimeout: "10s" } as Record<string, unknown>,
    status: {
      phase: "Running",
      conditions: [
        { type: "Ready", status: "True", lastTransitionTime: new Date(T0).toISOString() },
      ],
    },
  };
  const patches: object[] = [];
  const events: string[] = [];
  let reads = 0;
  const registry = new Registry();
  const s = new IdleSuspender({
    subject: () => idleSubjectOf(sandbox),
    readActivity: () => {
      reads++;
      return reading();
    },
    patch: async (_s, body) => {
      patches.push(body);
    },
    recordEvent: (_s, e) => events.push(`${e.reason}: ${e.message}`),
    registry,
    now: () => now,
    log: createLogger({ level: "silent" }),
  });
  return {
    s,
    sandbox,
    patches,
    events,
    registry,
    reads: () => reads,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

describe("IdleSuspender", () => {
  it("waits for the first look, reads once, waits for the rest of the period, then suspends", async () => {
    let idleMs = 4000;
    const h = harness(async () => ({ idleMs, inFlight: 0, calls: 3 }));
    expect(await h.s.check("ns/a")).toBe(10_000);
    expect(h.reads()).toBe(0);
    h.advance(10_000);
    expect(await h.s.check("ns/a")).toBe(6000); // used 4 s ago
    expect(h.reads()).toBe(1);
    h.advance(3000);
    expect(await h.s.check("ns/a")).toBe(3000); // an event in between: no read
    expect(h.reads()).toBe(1);
    h.advance(3000);
    idleMs = 10_000;
    expect(await h.s.check("ns/a")).toBeUndefined();
    expect(h.patches).toEqual([
      {
        metadata: { uid: "u1", annotations: { "sandboxing.dev/suspend-reason": "IdleTimeout" } },
        spec: { suspended: true },
      },
    ]);
    expect(h.events).toEqual([
      "IdleSuspended: no data-plane call or port traffic for 10s (idleTimeout 10s): suspended; the next call through the SDK or the gateway resumes it",
    ]);
    expect(
      await h.registry.getSingleMetricAsString("sandbox_operator_idle_suspensions_total"),
    ).toMatch(/ 1$/);
  });

  it("an agent that does not answer is never suspended", async () => {
    const h = harness(async () => {
      throw new Error("connect ECONNREFUSED");
    });
    h.advance(60_000);
    expect(await h.s.check("ns/a")).toBe(10_000);
    expect(h.patches).toEqual([]);
    expect(
      await h.registry.getSingleMetricAsString("sandbox_operator_idle_activity_reads_total"),
    ).toMatch(/result="error"} 1/);
  });

  it("removes a stale idle mark from a sandbox resumed by hand", async () => {
    const h = harness(async () => ({ idleMs: 0, inFlight: 0, calls: 0 }));
    Object.assign(h.sandbox.metadata, {
      annotations: { "sandboxing.dev/suspend-reason": "IdleTimeout" },
    });
    expect(await h.s.check("ns/a")).toBeUndefined();
    expect(h.patches).toEqual([
      { metadata: { uid: "u1", annotations: { "sandboxing.dev/suspend-reason": null } } },
    ]);
  });
});

describe("formatDuration", () => {
  it.each([
    [0, "0s"],
    [10_000, "10s"],
    [90_000, "1m30s"],
    [3_600_000, "1h"],
    [3_661_400, "1h1m1s"],
  ])("%d ms is %s", (ms, text) => expect(formatDuration(ms)).toBe(text));
});
