// A work queue of string keys with client-go's guarantees:
// - de-duplication: a key waiting in the queue is there once;
// - per-key serialization: a key is never processed twice at once; a key added
//   while it is being processed ("dirty") is processed again right after;
// - bounded concurrency;
// - priorities (optional): a key's priority comes from a function the owner
//   passes in, asked at each add; higher goes first, equal ones FIFO. A waiting
//   key added again with a higher priority moves up, never down (as
//   controller-runtime's priority queue). The queue knows nothing of what a
//   key names: why one key matters more is the owner's business;
// - delayed adds (requeue-after): one timer per key, the earliest wins;
// - per-key exponential backoff for failures (addRateLimited / forget);
// - graceful shutdown: stop handing out keys, wait for in-flight work.
import { backoffDelay } from "./backoff.js";
import { timerDelay } from "./timer-delay.js";

/** Hooks for metrics (the controller wires them to prom-client). */
export interface WorkQueueHooks {
  depth?(n: number): void;
  added?(): void;
  /** Seconds from the add to the start of processing of `key`. */
  waited?(seconds: number, key: string): void;
  retried?(): void;
}

export interface WorkQueueOptions {
  concurrency: number;
  /** First retry delay of a failing key (default 100 ms); doubles per failure. */
  backoffBaseMs?: number;
  /** Cap of the retry delay (default 5 min). */
  backoffMaxMs?: number;
  hooks?: WorkQueueHooks;
  /**
   * A key's priority when it is added (default 0 for all): higher is handed
   * out first. Asked on every add, so it must be cheap (a cache lookup).
   */
  priority?: (key: string) => number;
  /**
   * Workers beyond `concurrency` that only keys of at least `minPriority` may
   * take: keys that someone waits for, and that mostly wait themselves (a
   * few API writes), are not held back by slow low-priority work occupying
   * every worker, nor by each other.
   */
  priorityLane?: { minPriority: number; extra: number };
}

export type Worker = (key: string) => Promise<void>;

/** A waiting key: when it was first added, at which priority, and its entry's sequence number. */
interface Waiting {
  at: number;
  priority: number;
  seq: number;
}

export class WorkQueue {
  /**
   * A FIFO per priority, highest first. An entry whose `seq` is not its key's
   * current one is stale (the key moved up, or was handed out and added
   * again) and is skipped when reached: moving a key up costs no search.
   */
  private readonly levels: { priority: number; fifo: { key: string; seq: number }[] }[] = [];
  private readonly waiting = new Map<string, Waiting>();
  private seq = 0;
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
    return this.waiting.size;
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
    const priority = this.opts.priority?.(key) ?? 0;
    const queued = this.waiting.get(key);
    if (queued) {
      // Already waiting: it moves up if it matters more now, keeping its wait time.
      if (priority <= queued.priority) return;
      queued.priority = priority;
      queued.seq = ++this.seq;
      this.enter(key, queued);
      this.pump();
      return;
    }
    const entry = { at: performance.now(), priority, seq: ++this.seq };
    this.waiting.set(key, entry);
    this.enter(key, entry);
    this.opts.hooks?.added?.();
    this.opts.hooks?.depth?.(this.waiting.size);
    this.pump();
  }

  /** Append to its priority's FIFO (made on first use, levels kept highest first). */
  private enter(key: string, { priority, seq }: Waiting): void {
    let i = 0;
    while (i < this.levels.length && this.levels[i]!.priority > priority) i++;
    if (this.levels[i]?.priority !== priority) this.levels.splice(i, 0, { priority, fifo: [] });
    this.levels[i]!.fifo.push({ key, seq });
  }

  /** The next key to hand out (the oldest of the highest priority), left in place; stale entries dropped. */
  private head(): { key: string; priority: number } | undefined {
    while (this.levels.length > 0) {
      const level = this.levels[0]!;
      const e = level.fifo[0];
      if (!e) {
        this.levels.shift();
        continue;
      }
      if (this.waiting.get(e.key)?.seq === e.seq) return { key: e.key, priority: level.priority };
      level.fifo.shift();
    }
    return undefined;
  }

  /** Whether a worker may take a key of this priority with `busy` workers busy. */
  private mayStart(busy: number, priority: number): boolean {
    if (busy < this.opts.concurrency) return true;
    const lane = this.opts.priorityLane;
    return !!lane && priority >= lane.minPriority && busy < this.opts.concurrency + lane.extra;
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
    this.levels.length = 0;
    this.waiting.clear();
    this.dirty.clear();
    this.opts.hooks?.depth?.(0);
    await this.idle();
  }

  private pump(): void {
    while (this.worker && this.waiting.size > 0) {
      const head = this.head()!;
      if (!this.mayStart(this.processing.size, head.priority)) return;
      const key = head.key;
      this.levels[0]!.fifo.shift();
      const addedAt = this.waiting.get(key)!.at;
      this.waiting.delete(key);
      this.processing.add(key);
      this.opts.hooks?.waited?.((performance.now() - addedAt) / 1000, key);
      this.opts.hooks?.depth?.(this.waiting.size);
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
