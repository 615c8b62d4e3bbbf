// A pool holds its refill while claims wait for the sandboxes it gave them.
//
// A burst of claims binds many pooled sandboxes at once, and each binding
// makes the pool short by one. Refilling at once puts a replacement's whole
// start-up (a Sandbox created, its finalizer and status writes and Events,
// containers or a Pod made and started) on the same apiserver, container
// daemon and CPUs that the claimed sandboxes' short warm path (the claim's
// policy delivered, two status writes) needs at that moment; on a small
// machine the claims then wait seconds behind their own replacements
// (bench/pools: docs in bench/README.md). Nobody waits for a replacement, so
// it waits: the pool makes nothing while a sandbox it gave a claim is not
// Ready yet, within two bounds that keep a pool from starving:
//   - a claimed sandbox holds the refill for at most `perClaimMs` after the
//     pool first saw it bound (one that never becomes Ready holds nothing);
//   - one hold lasts at most `maxMs`; then the refill goes ahead, and only
//     after that may a new hold begin, so a steady stream of claims paces the
//     refill (a batch every `maxMs`) instead of stopping it.
// Pure: the shell (controller.ts) tracks the times and performs the creates.

export interface RefillHoldBounds {
  perClaimMs: number;
  maxMs: number;
}

export const REFILL_HOLD: RefillHoldBounds = {
  perClaimMs: 3_000,
  maxMs: 2_000,
};

export interface RefillHoldInput {
  /** For each claimed sandbox of the pool not Ready yet: when the pool first saw it so (ms). */
  waitingSinceMs: number[];
  /** When the hold now in force began; undefined when none is. */
  heldSinceMs: number | undefined;
  nowMs: number;
}

export type RefillHoldDecision =
  | { hold: false }
  /** Create nothing now; the hold began at `heldSinceMs`; look again in `recheckInMs` at the latest. */
  | { hold: true; heldSinceMs: number; recheckInMs: number };

export function refillHold(
  { waitingSinceMs, heldSinceMs, nowMs }: RefillHoldInput,
  bounds: RefillHoldBounds = REFILL_HOLD,
): RefillHoldDecision {
  const expiries = waitingSinceMs
    .map((t) => t + bounds.perClaimMs - nowMs)
    .filter((left) => left > 0);
  if (expiries.length === 0) return { hold: false };
  const since = heldSinceMs ?? nowMs;
  const left = since + bounds.maxMs - nowMs;
  if (left <= 0) return { hold: false };
  // A claimed sandbox turning Ready enqueues the pool (it watches them); the
  // recheck is for a hold that runs out with nothing else happening.
  return { hold: true, heldSinceMs: since, recheckInMs: Math.ceil(Math.min(left, ...expiries)) };
}
