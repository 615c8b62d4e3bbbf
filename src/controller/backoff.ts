// Exponential backoff with full jitter and a cap: retries of many failing keys
// spread out instead of arriving together.

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  /** Random source, for tests. */
  random?: () => number;
}

/** Delay before retry number `attempt` (0-based). */
export function backoffDelay(
  attempt: number,
  { baseMs, maxMs, random = Math.random }: BackoffOptions,
): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  // Keep at least half: full jitter can yield ~0, which defeats the point for small attempts.
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
