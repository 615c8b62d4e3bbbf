import { afterEach, describe, expect, it, vi } from "vitest";
import { WorkQueue } from "./workqueue.js";

/** A promise with its resolver, to let a test decide when a worker finishes. */
function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Let pending promise callbacks (the queue's bookkeeping after a worker returns) run. */
const settle = () => new Promise((r) => setImmediate(r));

afterEach(() => {
  vi.useRealTimers();
});

describe("WorkQueue", () => {
  it("holds a delay beyond what a Node.js timer can (30 days) instead of running the key at once", async () => {
    const q = new WorkQueue({ concurrency: 1 });
    q.addAfter("far", 30 * 24 * 3600 * 1000);
    // Unclamped, Node fires such a timer after 1 ms.
    await new Promise((r) => setTimeout(r, 50));
    expect(q.length).toBe(0);
    await q.shutdown();
  });

  it("de-duplicates keys waiting in the queue, in FIFO order", async () => {
    const q = new WorkQueue({ concurrency: 1 });
    for (const k of ["a", "a", "b", "a", "c", "b"]) q.add(k);
    expect(q.length).toBe(3);
    const seen: string[] = [];
    q.start(async (k) => {
      seen.push(k);
    });
    await q.idle();
    await settle();
    expect(seen).toEqual(["a", "b", "c"]);
  });

  it("never runs a key twice at once, and runs a key added meanwhile once more, after", async () => {
    const q = new WorkQueue({ concurrency: 4 });
    const gate = deferred();
    let running = 0;
    let maxRunning = 0;
    let runs = 0;
    q.start(async () => {
      runs++;
      running++;
      maxRunning = Math.max(maxRunning, running);
      if (runs === 1) await gate.promise;
      running--;
    });
    q.add("a");
    expect(q.inFlight).toBe(1);
    q.add("a"); // while processing: marked dirty, not run in parallel
    q.add("a");
    expect(q.length).toBe(0);
    gate.resolve();
    await vi.waitFor(() => expect(runs).toBe(2));
    await q.idle();
    expect(maxRunning).toBe(1);
  });

  it("bounds concurrency", async () => {
    const q = new WorkQueue({ concurrency: 2 });
    const gates = new Map<string, ReturnType<typeof deferred>>();
    q.start(async (k) => {
      const g = deferred();
      gates.set(k, g);
      await g.promise;
    });
    for (const k of ["a", "b", "c", "d"]) q.add(k);
    expect(q.inFlight).toBe(2);
    expect(q.length).toBe(2);
    gates.get("a")!.resolve();
    await vi.waitFor(() => expect(gates.has("c")).toBe(true));
    expect(q.inFlight).toBe(2);
    for (const g of gates.values()) g.resolve();
    await vi.waitFor(() => expect(gates.size).toBe(4));
    for (const g of gates.values()) g.resolve();
    await q.idle();
  });

  it("keeps a single timer per key for delayed adds: the earliest wins", async () => {
    vi.useFakeTimers();
    const q = new WorkQueue({ concurrency: 1 });
    const seen: string[] = [];
    q.start(async (k) => {
      seen.push(k);
    });
    q.addAfter("a", 200);
    q.addAfter("a", 30);
    q.addAfter("a", 500);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(29);
    expect(seen).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(seen).toEqual(["a"]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(seen).toEqual(["a"]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("backs off per key, exponentially up to the cap, and forgets on success", () => {
    vi.useFakeTimers();
    const q = new WorkQueue({ concurrency: 1, backoffBaseMs: 100, backoffMaxMs: 1000 });
    const delays = Array.from({ length: 6 }, () => q.addRateLimited("a"));
    expect(delays[0]).toBeGreaterThanOrEqual(50);
    expect(delays[0]).toBeLessThanOrEqual(100);
    expect(delays[3]).toBeGreaterThanOrEqual(400);
    expect(delays[5]).toBeLessThanOrEqual(1000);
    expect(q.failuresOf("a")).toBe(6);
    expect(q.failuresOf("b")).toBe(0);
    q.forget("a");
    expect(q.failuresOf("a")).toBe(0);
    expect(q.addRateLimited("a")).toBeLessThanOrEqual(100);
  });

  it("retries a first conflict at once, and backs off when it repeats", () => {
    vi.useFakeTimers();
    const q = new WorkQueue({ concurrency: 1, backoffBaseMs: 100 });
    expect(q.addRateLimited("a", { immediate: true })).toBe(0);
    expect(q.length).toBe(1);
    expect(q.addRateLimited("a", { immediate: true })).toBeGreaterThanOrEqual(50);
  });

  it("holds keys while paused and resumes with them", async () => {
    const q = new WorkQueue({ concurrency: 1 });
    const seen: string[] = [];
    const worker = async (k: string) => {
      seen.push(k);
    };
    q.start(worker);
    q.pause();
    q.add("a");
    await settle();
    expect(seen).toEqual([]);
    q.start(worker);
    await settle();
    expect(seen).toEqual(["a"]);
  });

  it("on shutdown, drains in-flight work, drops the rest and takes no more", async () => {
    vi.useFakeTimers();
    const q = new WorkQueue({ concurrency: 1 });
    const gate = deferred();
    const seen: string[] = [];
    let finished = false;
    q.start(async (k) => {
      seen.push(k);
      await gate.promise;
      finished = true;
    });
    q.add("a");
    q.add("b");
    q.addAfter("c", 10);
    const done = q.shutdown();
    expect(vi.getTimerCount()).toBe(0);
    gate.resolve();
    await done;
    expect(finished).toBe(true);
    q.add("d");
    await vi.advanceTimersByTimeAsync(100);
    expect(seen).toEqual(["a"]);
  });

  it("reports depth, adds, wait time and retries through hooks", async () => {
    const depths: number[] = [];
    const waits: number[] = [];
    let adds = 0;
    let retries = 0;
    const q = new WorkQueue({
      concurrency: 1,
      hooks: {
        depth: (n) => depths.push(n),
        added: () => adds++,
        waited: (s) => waits.push(s),
        retried: () => retries++,
      },
    });
    q.add("a");
    q.add("b");
    q.add("a");
    q.start(async () => {});
    await q.idle();
    await settle();
    q.addRateLimited("x");
    expect(adds).toBe(2);
    expect(depths).toEqual([1, 2, 1, 0]);
    expect(waits).toHaveLength(2);
    expect(waits.every((s) => s >= 0)).toBe(true);
    expect(retries).toBe(1);
    await q.shutdown();
  });

  // Each case: keys added (with the priority the function answers at that
  // moment) while the worker is paused, then the order they are handed out in.
  it.each([
    {
      name: "without priorities: FIFO",
      adds: [
        ["a", 0],
        ["b", 0],
        ["c", 0],
      ],
      order: ["a", "b", "c"],
    },
    {
      name: "higher first, FIFO within a priority",
      adds: [
        ["low1", 0],
        ["high1", 5],
        ["low2", 0],
        ["mid", 1],
        ["high2", 5],
      ],
      order: ["high1", "high2", "mid", "low1", "low2"],
    },
    {
      name: "a waiting key added again at a higher priority moves up, behind those already there",
      adds: [
        ["a", 0],
        ["h", 5],
        ["b", 0],
        ["a", 5],
      ],
      order: ["h", "a", "b"],
    },
    {
      name: "a waiting key added again at a lower priority stays where it was",
      adds: [
        ["x", 0],
        ["a", 5],
        ["a", 0],
        ["b", 5],
      ],
      order: ["a", "b", "x"],
    },
    {
      name: "negative priorities go after the default",
      adds: [
        ["refill", -1],
        ["plain", 0],
      ],
      order: ["plain", "refill"],
    },
  ] as { name: string; adds: [string, number][]; order: string[] }[])(
    "priorities: $name",
    async ({ adds, order }) => {
      let answer = 0;
      const q = new WorkQueue({ concurrency: 1, priority: () => answer });
      for (const [key, p] of adds) {
        answer = p;
        q.add(key);
      }
      expect(q.length).toBe(order.length);
      const seen: string[] = [];
      q.start(async (k) => {
        seen.push(k);
      });
      await vi.waitFor(() => expect(seen).toHaveLength(order.length));
      await q.idle();
      await settle();
      expect(seen).toEqual(order);
      expect(q.length).toBe(0);
    },
  );

  // Workers held (never finishing) while keys are added in order; which ones started.
  it.each([
    {
      name: "no lane: the concurrency bounds every priority",
      lane: undefined,
      adds: [
        ["low1", 0],
        ["high1", 5],
        ["high2", 5],
      ],
      started: ["low1"],
    },
    {
      name: "lane: high keys take the extra workers when the base ones are busy",
      lane: { minPriority: 5, extra: 2 },
      adds: [
        ["low1", 0],
        ["low2", 0],
        ["high1", 5],
        ["high2", 5],
        ["high3", 5],
      ],
      started: ["low1", "high1", "high2"],
    },
    {
      name: "lane: a key below its priority never takes an extra worker",
      lane: { minPriority: 5, extra: 2 },
      adds: [
        ["low1", 0],
        ["mid", 4],
        ["low2", 0],
      ],
      started: ["low1"],
    },
    {
      name: "lane: high keys take base workers first, as any key",
      lane: { minPriority: 5, extra: 1 },
      adds: [
        ["high1", 5],
        ["high2", 5],
        ["low1", 0],
      ],
      started: ["high1", "high2"],
    },
  ] as {
    name: string;
    lane?: { minPriority: number; extra: number };
    adds: [string, number][];
    started: string[];
  }[])("priority lane: $name", async ({ lane, adds, started }) => {
    let answer = 0;
    const q = new WorkQueue({
      concurrency: 1,
      priority: () => answer,
      ...(lane ? { priorityLane: lane } : {}),
    });
    const seen: string[] = [];
    const gate = deferred();
    q.start(async (k) => {
      seen.push(k);
      await gate.promise;
    });
    for (const [key, p] of adds) {
      answer = p;
      q.add(key);
    }
    await settle();
    expect(seen).toEqual(started);
    expect(q.inFlight).toBe(started.length);
    expect(q.length).toBe(adds.length - started.length);
    gate.resolve();
    await vi.waitFor(() => expect(seen).toHaveLength(adds.length));
  });

  it("asks for a key's priority afresh when it is added again after being handed out", async () => {
    const prio = new Map([["a", 5]]);
    const q = new WorkQueue({ concurrency: 1, priority: (k) => prio.get(k) ?? 0 });
    const gate = deferred();
    const seen: string[] = [];
    q.start(async (k) => {
      seen.push(k);
      if (seen.length === 1) await gate.promise;
    });
    q.add("a"); // handed out at once; its FIFO entry is gone
    q.add("b");
    q.add("c");
    prio.set("a", 0);
    q.add("a"); // dirty while processing: re-added after, now at 0, behind b and c
    prio.set("c", 9);
    q.add("c"); // moves up
    gate.resolve();
    await vi.waitFor(() => expect(seen).toHaveLength(4));
    expect(seen).toEqual(["a", "c", "b", "a"]);
  });

  it("keeps a moved-up key's wait time from its first add", async () => {
    vi.useFakeTimers();
    const waits: number[] = [];
    let answer = 0;
    const q = new WorkQueue({
      concurrency: 1,
      priority: () => answer,
      hooks: { waited: (s) => waits.push(s) },
    });
    q.add("a");
    await vi.advanceTimersByTimeAsync(200);
    answer = 1;
    q.add("a");
    q.start(async () => {});
    await vi.advanceTimersByTimeAsync(0);
    expect(waits).toHaveLength(1);
    expect(waits[0]).toBeGreaterThanOrEqual(0.2);
  });

  it("survives a worker that throws", async () => {
    const q = new WorkQueue({ concurrency: 1 });
    const seen: string[] = [];
    q.start(async (k) => {
      seen.push(k);
      throw new Error("boom");
    });
    q.add("a");
    q.add("b");
    await vi.waitFor(() => expect(seen).toEqual(["a", "b"]));
  });
});
