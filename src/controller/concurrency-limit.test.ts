import { describe, expect, it } from "vitest";
import { ConcurrencyLimit } from "./concurrency-limit.js";

function deferred() {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
const settle = () => new Promise((r) => setImmediate(r));

describe("ConcurrencyLimit", () => {
  it.each([
    { max: 1, maxWaiting: 10, tasks: 5, wantStarted: 1, wantWaiting: 4, wantRefused: 0 },
    { max: 2, maxWaiting: 10, tasks: 5, wantStarted: 2, wantWaiting: 3, wantRefused: 0 },
    { max: 2, maxWaiting: 1, tasks: 5, wantStarted: 2, wantWaiting: 1, wantRefused: 2 },
    { max: 8, maxWaiting: 0, tasks: 5, wantStarted: 5, wantWaiting: 0, wantRefused: 0 },
  ])(
    "max $max, $maxWaiting waiting at most, $tasks tasks: $wantStarted run, $wantWaiting wait, $wantRefused refused",
    async ({ max, maxWaiting, tasks, wantStarted, wantWaiting, wantRefused }) => {
      const limit = new ConcurrencyLimit(max, maxWaiting);
      const gates = Array.from({ length: tasks }, deferred);
      const started: number[] = [];
      const runs = gates.map((g, i) =>
        limit.tryRun(async () => {
          started.push(i);
          await g.promise;
          return i;
        }),
      );
      await settle();
      expect(started).toHaveLength(wantStarted);
      expect(limit.running).toBe(wantStarted);
      expect(limit.waiting).toBe(wantWaiting);
      expect(runs.filter((r) => r === undefined)).toHaveLength(wantRefused);
      for (const g of gates) g.resolve();
      const accepted = runs.filter((r) => r !== undefined);
      expect((await Promise.all(accepted)).length).toBe(tasks - wantRefused);
      expect(limit.running).toBe(0);
      expect(limit.waiting).toBe(0);
    },
  );

  it("runs waiters in arrival order, and a task that throws frees its slot", async () => {
    const limit = new ConcurrencyLimit(1);
    const order: string[] = [];
    const first = deferred();
    const a = limit.tryRun(async () => {
      order.push("a");
      await first.promise;
      throw new Error("boom");
    });
    const b = limit.tryRun(async () => {
      order.push("b");
    });
    first.reject(new Error("boom"));
    const c = limit.tryRun(async () => {
      order.push("c");
    });
    await expect(a).rejects.toThrow("boom");
    await Promise.all([b, c]);
    expect(order).toEqual(["a", "b", "c"]);
    expect(limit.running).toBe(0);
  });
});
