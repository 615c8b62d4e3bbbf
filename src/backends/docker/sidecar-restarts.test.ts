import { describe, expect, it } from "vitest";
import { planRestart, SIDECAR_STABLE_MS } from "./sidecar-restarts.js";

// No jitter: the ceiling of each delay.
const opts = { baseMs: 1000, maxMs: 60_000, random: () => 1 };
const T = 1_000_000;

describe("planRestart", () => {
  it.each([
    // [history, ran for, now, expected]
    ["the first death restarts at once", undefined, 500, T, { attempt: 1, waitMs: 0 }],
    [
      "a sidecar that ran stably restarts at once, the count starting over",
      { restarts: 7, lastAt: T - 61_000 },
      SIDECAR_STABLE_MS,
      T,
      { attempt: 1, waitMs: 0 },
    ],
    [
      "the second restart waits 1 s",
      { restarts: 1, lastAt: T },
      100,
      T,
      { attempt: 2, waitMs: 1000 },
    ],
    [
      "the third waits 2 s after the second",
      { restarts: 2, lastAt: T - 500 },
      100,
      T,
      { attempt: 3, waitMs: 1500 },
    ],
    [
      "the delay is counted from the last restart",
      { restarts: 3, lastAt: T - 10_000 },
      9_000,
      T,
      { attempt: 4, waitMs: 0 },
    ],
    [
      "the delay is capped at a minute",
      { restarts: 30, lastAt: T },
      100,
      T,
      { attempt: 31, waitMs: 60_000 },
    ],
  ] as const)("%s", (_, history, ranFor, now, expected) => {
    expect(planRestart(history, ranFor, now, opts)).toEqual(expected);
  });

  it("jitters the delay within [½, 1] of its ceiling", () => {
    const low = planRestart({ restarts: 4, lastAt: T }, 0, T, { ...opts, random: () => 0 });
    expect(low.waitMs).toBe(4000);
    const high = planRestart({ restarts: 4, lastAt: T }, 0, T, opts);
    expect(high.waitMs).toBe(8000);
  });
});
