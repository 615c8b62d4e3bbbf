// Exponential backoff with jitter and a cap, for work-queue retries and watch
// restarts: many failing keys (or informers) spread their retries out instead of
// hammering the apiserver together.

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  /** Random source in [0, 1), for tests. */
  random?: () => number;
}

/** Delay before retry number `attempt` (0-based): base·2^attempt, capped, jittered in [½, 1]. */
export function backoffDelay(
  attempt: number,
  { baseMs, maxMs, random = Math.random }: BackoffOptions,
): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(attempt, 0), 40));
  // "Equal jitter": full jitter can yield ~0, which would defeat the backoff.
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** A backoff that remembers its attempt count: `next()` after a failure, `reset()` after a success. */
export class Backoff {
  private attempt = 0;

  constructor(private readonly opts: BackoffOptions) {}

  next(): number {
    return backoffDelay(this.attempt++, this.opts);
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. Never rejects. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
