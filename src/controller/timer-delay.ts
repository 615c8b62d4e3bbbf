/**
 * The longest delay a Node.js timer honours: 2^31 − 1 ms (about 24.8 days).
 * A longer one is not an error there — it fires after 1 ms, with only a
 * warning — so a sandbox living 30 days would be reconciled in a tight loop.
 */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/**
 * A delay a timer can hold. A clamped timer fires early and the reconcile it
 * enqueues finds nothing due yet and schedules the rest: one extra, write-free
 * reconcile per 24.8 days instead of a loop.
 */
export function timerDelay(ms: number): number {
  return Math.min(Math.max(ms, 0), MAX_TIMER_DELAY_MS);
}
