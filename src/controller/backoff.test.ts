import { describe, expect, it } from "vitest";
import { Backoff, backoffDelay, sleep } from "./backoff.js";

describe("backoffDelay", () => {
  it("doubles from the base up to the cap", () => {
    const opts = { baseMs: 10, maxMs: 1000, random: () => 1 };
    expect([0, 1, 2, 3, 10, 500].map((a) => backoffDelay(a, opts))).toEqual([
      10, 20, 40, 80, 1000, 1000,
    ]);
  });

  it("jitters within the upper half of the ceiling", () => {
    expect(backoffDelay(3, { baseMs: 10, maxMs: 1000, random: () => 0 })).toBe(40);
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(3, { baseMs: 10, maxMs: 1000 });
      expect(d).toBeGreaterThanOrEqual(40);
      expect(d).toBeLessThanOrEqual(80);
    }
  });
});

describe("Backoff", () => {
  it("counts attempts and starts over after reset", () => {
    const b = new Backoff({ baseMs: 100, maxMs: 250, random: () => 1 });
    expect([b.next(), b.next(), b.next()]).toEqual([100, 200, 250]);
    b.reset();
    expect(b.next()).toBe(100);
  });
});

describe("sleep", () => {
  it("ends early when aborted", async () => {
    const abort = new AbortController();
    const started = performance.now();
    const slept = sleep(60_000, abort.signal);
    abort.abort();
    await slept;
    expect(performance.now() - started).toBeLessThan(1000);
    await sleep(10, abort.signal); // already aborted: resolves at once
  });
});
