// A work queue of string keys with client-go's guarantees:
// - de-duplication: a key waiting in the queue is there once;
// - per-key serialization: a key is never processed twice at once; a key added
//   while it is being processed ("dirty") is processed again right after;
// - bounded concurrency;
// - delayed adds (requeue-after): one timer per key, the earliest wins;
// - per-key exponential backoff for failures (addRateLimited / forget);
// - graceful shutdown: stop handing out keys, wait for in-flight work.
import { backoffDelay } from "./backoff.js";
import { timerDelay } from "./timer-delay.js";

/** Hooks for metrics (the controller wires them to prom-client). */
export interface WorkQueueHooks {
  depth?(n: number): void;
  added?(): void;
  /** Seconds from the add to the start of processing. */
  waited?(seconds: number): void;
  retried?(): void;
}

export interface WorkQueueOptions {
  concurrency: number;
  /** First retry delay of a failing key (default 100 ms); doubles per failure. */
  backoffBaseMs?: number;
  /** Cap of the retry delay (default 5 min). */
  backoffMaxMs?: number;
  hooks?: WorkQueueHooks;
}

export type Worker = (key: string) => Promise<void>;

export class WorkQueue {
  /** FIFO of waiting keys; `waiting` maps each to when it was added. */
  private readonly order: string[] = [];
  private readonly waiting = new Map<string, number>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  private worker: Worker | undefined;
  private shuttingDown = false;
  private readonly idleWaiters: (() => void)[] = [];

  constructor(private readonly opts: WorkQueueOptions) {
    if (!(opts.concurrency >= 1)) throw new Error("concurrency must be at least 1");
  }

  /** Keys waiting to be processed. */
  get length(): number {
    return this.order.length;
  }

  /** Keys being processed right now. */
  get inFlight(): number {
    return this.processing.size;
  }

  add(key: string): void {
    if (this.shuttingDown) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.waiting.has(key)) return;
    this.waiting.set(key, performance.now());
    this.order.push(key);
    this.opts.hooks?.added?.();
    this.opts.hooks?.depth?.(this.order.length);
    this.pump();
  }

  /** Add after `ms`. One timer per key: an earlier pending add wins over a later one. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const at = performance.now() + ms;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, timerDelay(ms));
    // A pending retry alone should not keep a process alive.
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /**
   * Retry a failed key after its backoff, which doubles with each consecutive
   * failure. With `immediate`, a first failure is retried at once (a conflict:
   * the cache was stale); repeated failures still back off. Returns the delay.
   */
  addRateLimited(key: string, { immediate = false } = {}): number {
    const attempt = this.failures.get(key) ?? 0;
    this.failures.set(key, attempt + 1);
    const delay =
      immediate && attempt === 0
        ? 0
        : backoffDelay(immediate ? attempt - 1 : attempt, {
            baseMs: this.opts.backoffBaseMs ?? 100,
            maxMs: this.opts.backoffMaxMs ?? 300_000,
          });
    this.opts.hooks?.retried?.();
    this.addAfter(key, delay);
    return delay;
  }

  /** The key succeeded (or gave up): its next failure starts the backoff afresh. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  failuresOf(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Start (or resume) handing keys to `worker`. */
  start(worker: Worker): void {
    if (this.shuttingDown) return;
    this.worker = worker;
    this.pump();
  }

  /** Stop handing out keys; in-flight work finishes, waiting keys stay for a later start. */
  pause(): void {
    this.worker = undefined;
  }

  /** Resolves once no key is being processed. */
  idle(): Promise<void> {
    if (this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stop for good: take no more keys, drop waiting and delayed ones, wait for in-flight work. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    this.worker = undefined;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.order.length = 0;
    this.waiting.clear();
    this.dirty.clear();
    this.opts.hooks?.depth?.(0);
    await this.idle();
  }

  private pump(): void {
    while (this.worker && this.processing.size < this.opts.concurrency && this.order.length > 0) {
      const key = this.order.shift()!;
      const addedAt = this.waiting.get(key)!;
      this.waiting.delete(key);
      this.processing.add(key);
      this.opts.hooks?.waited?.((performance.now() - addedAt) / 1000);
      this.opts.hooks?.depth?.(this.order.length);
      void this.run(this.worker, key);
    }
  }

  private async run(worker: Worker, key: string): Promise<void> {
    try {
      await worker(key);
    } catch {
      // The worker owns error handling; a throw here must not wedge the key.
    } finally {
      this.processing.delete(key);
      if (this.dirty.delete(key)) this.add(key);
      if (this.processing.size === 0) for (const wake of this.idleWaiters.splice(0)) wake();
      this.pump();
    }
  }
}
