import { describe, expect, it } from "vitest";
import { RefillLimiter } from "./refill-limiter.js";

describe("RefillLimiter", () => {
  it("grants a burst, then the rate", () => {
    const l = new RefillLimiter(10, 20, 0);
    expect(l.take(25, 0)).toEqual({ granted: 20, nextInMs: 100 });
    expect(l.take(5, 50).granted).toBe(0);
    expect(l.take(5, 100).granted).toBe(1);
    expect(l.take(5, 600).granted).toBe(5);
  });

  it("never saves more than the burst", () => {
    const l = new RefillLimiter(10, 3, 0);
    expect(l.take(100, 60_000).granted).toBe(3);
  });

  it("follows a lowered burst", () => {
    const l = new RefillLimiter(10, 20, 0);
    l.configure(1, 2);
    expect(l.take(5, 0).granted).toBe(2);
    expect(l.take(5, 1000).granted).toBe(1);
  });
});
