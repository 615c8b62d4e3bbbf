import { describe, expect, it } from "vitest";
import { isoTime } from "./logger.js";

describe("isoTime: pino's timestamp, each second formatted once", () => {
  const base = Date.UTC(2026, 10, 30, 23, 59, 59);
  it.each([0, 1, 9, 10, 99, 100, 999, 1000, 1001, 61_234, -base])("+%i ms", (d) => {
    const t = base + d;
    expect(isoTime(t)).toBe(`,"time":"${new Date(t).toISOString()}"`);
  });
  it("the same second twice, then the next, then back", () => {
    for (const t of [base + 5, base + 6, base + 1005, base + 7])
      expect(isoTime(t)).toBe(`,"time":"${new Date(t).toISOString()}"`);
  });
});
