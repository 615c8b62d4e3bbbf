import { describe, expect, it } from "vitest";
import { logsSince } from "./sidecar-ready.js";

describe("logsSince", () => {
  it.each([
    ["2026-01-01T00:00:00Z", "1767225600.000000000"],
    ["2026-01-01T00:00:00.5Z", "1767225600.500000000"],
    ["2026-01-01T00:00:01.123456789Z", "1767225601.123456789"],
  ])("%s -> %s (to the nanosecond: a restart's log holds the last run's lines)", (t, since) => {
    expect(logsSince(t)).toBe(since);
  });
});
