// A work queue of string keys with client-go's guarantees:
// - de-duplication: a key waiting in the queue is there once;
// - per-key serialization: a key is never processed twice at once; a key added
//   while it is being processed is processed again right after;
// - bounded concurrency;
// - delayed adds (requeue-after), one timer per key, the earliest wins;
// - per-key exponential backoff for failures.
import { backoffDelay } from "./backoff.js";

export interface WorkQueueMetrics {
  depth(n: number): void;
  added(): void;
  /** Seconds from (latest) add to the start of processing. */
  waited(seconds: number): void;
  retried(): void;
}

export interface WorkQueueOptions {
  concurrency: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  metrics?: WorkQueueMetrics;
}

export type Worker = (key: string) => Promise<void>;

export class WorkQueue {
  private readonly ready: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly addedWhileProcessing = new Set<string>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  private readonly enqueuedAt = new Map<string, number>();
  private worker: Worker | undefined;
  private stopped = false;
  private drained: (() => void) | undefined;

  constructor(private readonly opts: WorkQueueOptions) {}

  get length(): number {
    return this.ready.length;
  }

  /** Keys waiting, being processed, or scheduled for later. */
  get size(): number {
    return new Set([...this.ready, ...this.processing, ...this.timers.keys()]).size;
  }

  add(key: string): void {
    if (this.stopped) return;
    if (this.processing.has(key)) {
      this.addedWhileProcessing.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.ready.push(key);
    this.enqueuedAt.set(key, performance.now());
    this.opts.metrics?.added();
    this.opts.metrics?.depth(this.ready.length);
    this.pump();
  }

  /** Add after `ms`; an earlier pending add of the same key wins over a later one. */
  addAfter(key: string, ms: number): void {
    if (this.stopped) return;
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
    }, ms);
    this.timers.set(key, { at, timer });
  }

  /** Retry a failed key after its backoff, which doubles with each consecutive failure. */
  addRateLimited(key: string): number {
    const attempt = this.failures.get(key) ?? 0;
    this.failures.set(key, attempt + 1);
    const delay = backoffDelay(attempt, {
      baseMs: this.opts.backoffBaseMs ?? 100,
      maxMs: this.opts.backoffMaxMs ?? 300_000,
    });
    this.opts.metrics?.retried();
    this.addAfter(key, delay);
    return delay;
  }

  /** The key succeeded: its next failure starts the backoff afresh. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  failuresOf(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Start (or resume) handing keys to `worker`. */
  start(worker: Worker): void {
    this.worker = worker;
    this.pump();
  }

  /** Stop handing out keys; in-flight work continues. Queued keys stay for a later start. */
  pause(): void {
    this.worker = undefined;
  }

  /** Stop for good: drop timers and queued keys, and wait for in-flight work to finish. */
  async shutdown(): Promise<void> {
    this.stopped = true;
    this.worker = undefined;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.ready.length = 0;
    this.queued.clear();
    if (this.processing.size === 0) return;
    await new Promise<void>((resolve) => {
      this.drained = resolve;
    });
  }

  private pump(): void {
    while (this.worker && this.processing.size < this.opts.concurrency && this.ready.length > 0) {
      const key = this.ready.shift()!;
      this.queued.delete(key);
      this.processing.add(key);
      const since = this.enqueuedAt.get(key);
      this.enqueuedAt.delete(key);
      if (since !== undefined) this.opts.metrics?.waited((performance.now() - since) / 1000);
      this.opts.metrics?.depth(this.ready.length);
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
      if (this.addedWhileProcessing.delete(key)) this.add(key);
      if (this.stopped && this.processing.size === 0) this.drained?.();
      this.pump();
    }
  }
}
