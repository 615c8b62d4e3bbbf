import { describe, expect, it } from "vitest";
import { BoundedCache, ConcurrencyLimiter, RateLimiter } from "./limits.js";

describe("RateLimiter", () => {
  it("allows the burst, then the rate, per key", () => {
    let t = 0;
    const r = new RateLimiter({ rps: 10, burst: 3 }, 100, () => t);
    expect([1, 2, 3, 4].map(() => r.take("a"))).toEqual([true, true, true, false]);
    expect(r.take("b")).toBe(true);
    t += 100; // one token back
    expect([r.take("a"), r.take("a")]).toEqual([true, false]);
  });
  it("bounds its keys", () => {
    const r = new RateLimiter({ rps: 1, burst: 1 }, 2, () => 0);
    r.take("a");
    r.take("b");
    r.take("c"); // evicts a
    expect(r.take("a")).toBe(true);
  });
  it("evicts the idlest key, its place refreshed at most once a second", () => {
    let t = 0;
    const r = new RateLimiter({ rps: 0, burst: 1 }, 2, () => t);
    r.take("a"); // a's one token spent
    r.take("b");
    t = 500;
    r.take("a"); // used again within the second: still first in line
    r.take("c"); // evicts a (a fresh bucket: allowed again)
    expect(r.take("a")).toBe(true);
    t = 2000;
    r.take("c"); // c moves behind a (now idlest: b was evicted by a)
    r.take("d"); // evicts a, not c
    expect([r.take("c"), r.take("a")]).toEqual([false, true]);
  });
});

describe("ConcurrencyLimiter", () => {
  it("caps in-flight per key and releases once", () => {
    const c = new ConcurrencyLimiter(2);
    const a = c.acquire("k")!;
    const b = c.acquire("k")!;
    expect(c.acquire("k")).toBeUndefined();
    a();
    a();
    expect(c.count("k")).toBe(1);
    b();
    expect(c.count("k")).toBe(0);
  });
});

describe("BoundedCache", () => {
  it("expires and evicts the oldest", () => {
    let t = 0;
    const c = new BoundedCache<number>(2, 10, () => t);
    c.set("a", 1);
    c.set("b", 2);
    c.set("c", 3);
    expect([c.get("a"), c.get("b"), c.get("c")]).toEqual([undefined, 2, 3]);
    t = 10;
    expect(c.get("b")).toBeUndefined();
  });
});
