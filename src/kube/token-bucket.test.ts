import { describe, expect, it } from "vitest";
import { TokenBucket } from "./token-bucket.js";

describe("TokenBucket", () => {
  it("lets a burst through at once, then paces at qps", async () => {
    const bucket = new TokenBucket(50, 5);
    const start = performance.now();
    await Promise.all(Array.from({ length: 5 }, () => bucket.take()));
    const burstMs = performance.now() - start;
    await Promise.all(Array.from({ length: 5 }, () => bucket.take()));
    const pacedMs = performance.now() - start;
    expect(burstMs).toBeLessThan(50);
    // 5 more tokens at 50/s take ~100 ms; allow generous scheduling slack upward only.
    expect(pacedMs).toBeGreaterThanOrEqual(90);
  });

  it("serves callers in order", async () => {
    const bucket = new TokenBucket(100, 1);
    const order: number[] = [];
    await Promise.all([1, 2, 3].map((i) => bucket.take().then(() => order.push(i))));
    expect(order).toEqual([1, 2, 3]);
  });

  it("rejects nonsense settings", () => {
    expect(() => new TokenBucket(0, 1)).toThrow();
    expect(() => new TokenBucket(1, 0)).toThrow();
  });
});
