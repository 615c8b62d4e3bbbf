import { describe, expect, it } from "vitest";
import { type RefillHoldInput, refillHold } from "./refill-hold.js";

const bounds = { perClaimMs: 3000, maxMs: 2000 };

describe("refillHold", () => {
  it.each<{ name: string; input: RefillHoldInput; want: ReturnType<typeof refillHold> }>([
    {
      name: "no claim waiting: refill",
      input: { waitingSinceMs: [], heldSinceMs: undefined, nowMs: 10_000 },
      want: { hold: false },
    },
    {
      name: "a claim just bound: a hold begins now, rechecked when it would run out",
      input: { waitingSinceMs: [10_000], heldSinceMs: undefined, nowMs: 10_000 },
      want: { hold: true, heldSinceMs: 10_000, recheckInMs: 2000 },
    },
    {
      name: "the hold goes on from when it began",
      input: { waitingSinceMs: [10_000, 10_500], heldSinceMs: 10_000, nowMs: 11_200 },
      want: { hold: true, heldSinceMs: 10_000, recheckInMs: 800 },
    },
    {
      name: "rechecked when the oldest waiting claim stops counting, if that comes first",
      input: { waitingSinceMs: [8_000, 10_000], heldSinceMs: 10_000, nowMs: 10_500 },
      want: { hold: true, heldSinceMs: 10_000, recheckInMs: 500 },
    },
    {
      name: "the hold ran out: refill, though claims still wait (a steady stream paces it)",
      input: { waitingSinceMs: [11_900], heldSinceMs: 10_000, nowMs: 12_000 },
      want: { hold: false },
    },
    {
      name: "a claimed sandbox waiting longer than its bound (never Ready) holds nothing",
      input: { waitingSinceMs: [5_000], heldSinceMs: undefined, nowMs: 8_000 },
      want: { hold: false },
    },
  ])("$name", ({ input, want }) => {
    expect(refillHold(input, bounds)).toEqual(want);
  });
});
