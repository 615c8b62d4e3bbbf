import { describe, expect, it } from "vitest";
import { MAX_TIMER_DELAY_MS, timerDelay } from "./timer-delay.js";

describe("timerDelay", () => {
  it.each([
    [-5, 0],
    [0, 0],
    [1500, 1500],
    [MAX_TIMER_DELAY_MS, MAX_TIMER_DELAY_MS],
    [366 * 24 * 3600 * 1000, MAX_TIMER_DELAY_MS],
  ])("%d ms → %d ms", (ms, want) => {
    expect(timerDelay(ms)).toBe(want);
  });
});
