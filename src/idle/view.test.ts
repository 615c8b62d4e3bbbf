import { describe, expect, it } from "vitest";
import { idleViewOf } from "./view.js";

const running = {
  metadata: { namespace: "ns", name: "a", uid: "u" },
  spec: { image: "x", idleTimeout: "1m30s" },
  status: {
    phase: "Running",
    conditions: [{ type: "Ready", status: "True", lastTransitionTime: "2030-01-01T00:00:00Z" }],
  },
};

describe("idleViewOf", () => {
  it("reads a serving sandbox", () => {
    expect(idleViewOf(running)).toEqual({
      idleTimeoutMs: 90_000,
      suspended: false,
      idleSuspended: false,
      deleting: false,
      serving: true,
      readySinceMs: Date.parse("2030-01-01T00:00:00Z"),
    });
  });

  it.each([
    ["no idleTimeout", { ...running, spec: { image: "x" } }, { idleTimeoutMs: undefined }],
    [
      "an unparsable idleTimeout is none",
      { ...running, spec: { idleTimeout: "soon" } },
      { idleTimeoutMs: undefined },
    ],
    [
      "a number is not a duration",
      { ...running, spec: { idleTimeout: 60 } },
      { idleTimeoutMs: undefined },
    ],
    [
      "not Ready",
      {
        ...running,
        status: { phase: "Running", conditions: [{ type: "Ready", status: "False" }] },
      },
      { serving: false, readySinceMs: undefined },
    ],
    ["Pending", { ...running, status: { phase: "Pending" } }, { serving: false }],
    ["no status", { ...running, status: undefined }, { serving: false }],
    ["suspended", { ...running, spec: { ...running.spec, suspended: true } }, { suspended: true }],
    [
      "suspended: a string is not true",
      { ...running, spec: { ...running.spec, suspended: "true" } },
      { suspended: false },
    ],
    [
      "the idle mark",
      {
        ...running,
        metadata: {
          ...running.metadata,
          annotations: { "sandboxing.dev/suspend-reason": "IdleTimeout" },
        },
      },
      { idleSuspended: true },
    ],
    [
      "another suspend reason is not the idle mark",
      {
        ...running,
        metadata: {
          ...running.metadata,
          annotations: { "sandboxing.dev/suspend-reason": "Manual" },
        },
      },
      { idleSuspended: false },
    ],
    [
      "being deleted",
      { ...running, metadata: { ...running.metadata, deletionTimestamp: "2030-01-01T00:00:00Z" } },
      { deleting: true },
    ],
    [
      "a Date from the cache",
      {
        ...running,
        status: {
          ...running.status,
          conditions: [{ type: "Ready", status: "True", lastTransitionTime: new Date(5000) }],
        },
      },
      { readySinceMs: 5000 },
    ],
  ])("%s", (_name, raw, want) => {
    expect(idleViewOf(raw)).toMatchObject(want);
  });

  it("garbage reads as nothing to watch", () => {
    expect(idleViewOf(undefined)).toMatchObject({ idleTimeoutMs: undefined, serving: false });
    expect(idleViewOf({ status: { conditions: "x" } })).toMatchObject({ serving: false });
  });
});
