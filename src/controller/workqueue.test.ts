import { describe, expect, it } from "vitest";
import { backoffDelay } from "./backoff.js";
import { WorkQueue } from "./workqueue.js";

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

describe("WorkQueue", () => {
  it("de-duplicates keys waiting in the queue", async () => {
    const q = new WorkQueue({ concurrency: 1 });
    const seen: string[] = [];
    q.add("a");
    q.add("a");
    q.add("b");
    q.add("a");
    q.start(async (k) => {
      seen.push(k);
    });
    await tick(10);
    expect(seen).toEqual(["a", "b"]);
  });

  it("never processes a key twice at once, and reprocesses a key added meanwhile", async () => {
    const q = new WorkQueue({ concurrency: 4 });
    let running = 0;
    let maxRunning = 0;
    let runs = 0;
    q.start(async () => {
      runs++;
      running++;
      maxRunning = Math.max(maxRunning, running);
      await tick(20);
      running--;
    });
    q.add("a");
    await tick(5);
    q.add("a"); // while processing
    q.add("a");
    await tick(80);
    expect(maxRunning).toBe(1);
    expect(runs).toBe(2);
  });

  it("bounds concurrency", async () => {
    const q = new WorkQueue({ concurrency: 2 });
    let running = 0;
    let maxRunning = 0;
    q.start(async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await tick(10);
      running--;
    });
    for (const k of ["a", "b", "c", "d", "e"]) q.add(k);
    await tick(60);
    expect(maxRunning).toBe(2);
  });

  it("keeps only the earliest delayed add of a key", async () => {
    const q = new WorkQueue({ concurrency: 1 });
    const seen: number[] = [];
    const start = performance.now();
    q.start(async () => {
      seen.push(performance.now() - start);
    });
    q.addAfter("a", 200);
    q.addAfter("a", 30);
    q.addAfter("a", 500);
    await tick(300);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toBeLessThan(150);
    await q.shutdown();
  });

  it("backs off per key and forgets on success", () => {
    const q = new WorkQueue({ concurrency: 1, backoffBaseMs: 100, backoffMaxMs: 1000 });
    const delays = [q.addRateLimited("a"), q.addRateLimited("a"), q.addRateLimited("a")];
    expect(delays[0]).toBeGreaterThanOrEqual(50);
    expect(delays[0]).toBeLessThanOrEqual(100);
    expect(delays[2]).toBeGreaterThanOrEqual(200);
    expect(q.failuresOf("a")).toBe(3);
    expect(q.failuresOf("b")).toBe(0);
    q.forget("a");
    expect(q.failuresOf("a")).toBe(0);
    void q.shutdown();
  });

  it("holds keys while paused and drains in-flight work on shutdown", async () => {
    const q = new WorkQueue({ concurrency: 1 });
    const seen: string[] = [];
    q.add("a");
    await tick(5);
    expect(q.length).toBe(1);
    let finished = false;
    q.start(async (k) => {
      seen.push(k);
      await tick(30);
      finished = true;
    });
    await tick(5);
    await q.shutdown();
    expect(finished).toBe(true);
    q.add("b");
    await tick(5);
    expect(seen).toEqual(["a"]);
  });
});

describe("backoffDelay", () => {
  it("grows exponentially up to the cap", () => {
    const opts = { baseMs: 10, maxMs: 1000, random: () => 1 };
    expect([0, 1, 2, 3, 10, 50].map((a) => backoffDelay(a, opts))).toEqual([
      10, 20, 40, 80, 1000, 1000,
    ]);
  });
});
