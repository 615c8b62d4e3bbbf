import { timerDelay } from "../controller/timer-delay.js";

// Expiry is scheduled independently of the retry backoff: a sandbox whose
// reconcile keeps failing (an apiserver outage, a daemon that is down) is
// retried with a backoff that grows to minutes, and its lifetime must not wait
// for that.

/**
 * One timer per key whose reconcile failed, set for its expiry: a failing
 * sandbox is retried with a backoff of up to minutes, and its lifetime must not
 * wait for that. Replaced on each failure; a timer that fires just enqueues.
 */
export class ExpiryTimers {
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(private readonly enqueue: (key: string) => void) {}

  arm(key: string, ms: number | undefined): void {
    clearTimeout(this.timers.get(key));
    this.timers.delete(key);
    if (ms === undefined) return;
    const timer = setTimeout(
      () => {
        this.timers.delete(key);
        this.enqueue(key);
      },
      timerDelay(ms + 1),
    ).unref();
    this.timers.set(key, timer);
  }

  clear(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
