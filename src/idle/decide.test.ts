import { describe, expect, it } from "vitest";
import {
  type ActivityReading,
  decideIdle,
  type IdleDecision,
  type IdleMemory,
  type IdleView,
  UNREACHABLE_RETRY_MS,
} from "./decide.js";

const T0 = Date.parse("2030-01-01T00:00:00Z");
const MIN = 60_000;
const serving: IdleView = {
  idleTimeoutMs: 10 * MIN,
  suspended: false,
  idleSuspended: false,
  deleting: false,
  serving: true,
  readySinceMs: T0,
};

interface Case {
  name: string;
  view?: Partial<IdleView>;
  memory?: IdleMemory;
  reading?: ActivityReading;
  now: number;
  want: IdleDecision;
}

const cases: Case[] = [
  // Nothing to watch.
  {
    name: "no idleTimeout",
    view: { idleTimeoutMs: undefined },
    now: T0 + 60 * MIN,
    want: { kind: "none" },
  },
  {
    name: "suspended (by anyone)",
    view: { suspended: true },
    now: T0 + 60 * MIN,
    want: { kind: "none" },
  },
  {
    name: "suspended by the operator: nothing to do until someone resumes it",
    view: { suspended: true, idleSuspended: true },
    now: T0 + 60 * MIN,
    want: { kind: "none" },
  },
  {
    name: "not serving (Pending, finished, not Ready)",
    view: { serving: false },
    now: T0 + 60 * MIN,
    want: { kind: "none" },
  },
  { name: "being deleted", view: { deleting: true }, now: T0 + 60 * MIN, want: { kind: "none" } },
  {
    name: "being deleted with a stale mark: nothing (deletion wins)",
    view: { deleting: true, idleSuspended: true },
    now: T0,
    want: { kind: "none" },
  },
  // A resume by hand that left the mark.
  {
    name: "running with the idle mark: remove it",
    view: { idleSuspended: true },
    now: T0,
    want: { kind: "clearAnnotation" },
  },
  {
    name: "the mark is cleared even without an idleTimeout",
    view: { idleSuspended: true, idleTimeoutMs: undefined },
    now: T0,
    want: { kind: "clearAnnotation" },
  },
  // Before any read: the first look is idleTimeout after Ready.
  { name: "just Ready: wait a full period", now: T0, want: { kind: "wait", atMs: T0 + 10 * MIN } },
  {
    name: "half way: still waiting for the same instant",
    now: T0 + 5 * MIN,
    want: { kind: "wait", atMs: T0 + 10 * MIN },
  },
  { name: "due: read", now: T0 + 10 * MIN, want: { kind: "read" } },
  { name: "overdue (after a restart): read at once", now: T0 + 90 * MIN, want: { kind: "read" } },
  {
    name: "Ready time unknown: a full period from now",
    view: { readySinceMs: undefined },
    now: T0 + 3 * MIN,
    want: { kind: "wait", atMs: T0 + 13 * MIN },
  },
  {
    name: "a later look decided earlier is kept",
    memory: { nextCheckAtMs: T0 + 17 * MIN },
    now: T0 + 12 * MIN,
    want: { kind: "wait", atMs: T0 + 17 * MIN },
  },
  {
    name: "a remembered look earlier than idleTimeout after Ready is not honoured (a new incarnation)",
    memory: { nextCheckAtMs: T0 - MIN },
    now: T0 + MIN,
    want: { kind: "wait", atMs: T0 + 10 * MIN },
  },
  {
    name: "the remembered look is due: read",
    memory: { nextCheckAtMs: T0 + 17 * MIN },
    now: T0 + 17 * MIN,
    want: { kind: "read" },
  },
  // With the agent's answer.
  {
    name: "unused for the whole period: suspend",
    reading: { idleMs: 10 * MIN, inFlight: 0 },
    now: T0 + 10 * MIN,
    want: { kind: "suspend", idleMs: 10 * MIN },
  },
  {
    name: "unused for longer (the controller was down): suspend",
    reading: { idleMs: 95 * MIN, inFlight: 0 },
    now: T0 + 95 * MIN,
    want: { kind: "suspend", idleMs: 95 * MIN },
  },
  {
    name: "used 3 minutes ago: look again when it could first be idle",
    reading: { idleMs: 3 * MIN, inFlight: 0 },
    now: T0 + 10 * MIN,
    want: { kind: "wait", atMs: T0 + 17 * MIN },
  },
  {
    name: "1 ms short of the timeout: not yet",
    reading: { idleMs: 10 * MIN - 1, inFlight: 0 },
    now: T0 + 10 * MIN,
    want: { kind: "wait", atMs: T0 + 10 * MIN + 1 },
  },
  {
    name: "a call in flight (a long exec): a full period from now",
    reading: { idleMs: 0, inFlight: 2 },
    now: T0 + 10 * MIN,
    want: { kind: "wait", atMs: T0 + 20 * MIN },
  },
  {
    name: "the agent did not answer: never suspend, retry within 30 s",
    reading: { error: "connect ECONNREFUSED" },
    now: T0 + 10 * MIN,
    want: { kind: "wait", atMs: T0 + 10 * MIN + UNREACHABLE_RETRY_MS },
  },
  {
    name: "the agent did not answer, short timeout: retry within the timeout",
    view: { idleTimeoutMs: 10_000 },
    reading: { error: "timeout" },
    now: T0 + MIN,
    want: { kind: "wait", atMs: T0 + MIN + 10_000 },
  },
  {
    name: "a reading is ignored once the sandbox is suspended meanwhile",
    view: { suspended: true },
    reading: { idleMs: 60 * MIN, inFlight: 0 },
    now: T0 + 60 * MIN,
    want: { kind: "none" },
  },
];

describe("decideIdle", () => {
  it.each(cases)("$name", ({ view, memory, reading, now, want }) => {
    expect(decideIdle({ ...serving, ...view }, memory ?? {}, reading, now)).toEqual(want);
  });

  it("in constant use, one read per idle period", () => {
    // A call every minute for an hour: the agent always answers "used within the last minute".
    const view = { ...serving };
    let memory: IdleMemory = {};
    let reads = 0;
    for (let now = T0; now <= T0 + 60 * MIN; now += 1000) {
      const d = decideIdle(view, memory, undefined, now);
      if (d.kind !== "read") continue;
      reads++;
      const idleMs = (now - T0) % MIN;
      const after = decideIdle(view, memory, { idleMs, inFlight: 0 }, now);
      expect(after.kind).toBe("wait");
      if (after.kind === "wait") memory = { nextCheckAtMs: after.atMs };
    }
    // First look at 10 min, then every 9–10 min: at most 6 reads in an hour.
    expect(reads).toBeGreaterThanOrEqual(5);
    expect(reads).toBeLessThanOrEqual(6);
  });
});
