// A controller: informers feed keys into a work queue; workers reconcile keys.
// Generic: it knows keys, not what they name.
//
// Informers run on every replica so a new leader starts with a warm cache;
// workers run only while this replica leads (when leader election is on).
// Gaining leadership enqueues every key: reconciles are level-triggered, so
// that is safe, and it is what makes a restart or a failover converge.
//
// Losing it aborts every in-flight reconcile's signal, and writeGate (which
// the writers' KubeConfig asks before every write, see write-gate.ts) refuses
// from that instant on, even when this process learns of the loss only on
// waking from a pause, before its timers had a chance to run.
//
// Sharded (see shard-elector.ts), several replicas reconcile at once: each key
// belongs to one of K shards and only the holder of a shard's Lease reconciles
// its keys. The same guarantees hold per shard: gaining a shard enqueues its
// keys; losing it aborts its reconciles; a reconcile runs in an async context
// that names its shard, and the write gate refuses a write whose shard this
// replica does not hold by the clocks. Writes outside any reconcile (cluster-
// wide chores) belong to shard 0's holder.
import { AsyncLocalStorage } from "node:async_hooks";
import { setMaxListeners } from "node:events";
import type { Registry } from "prom-client";
import type { Logger } from "../observability/logger.js";
import { classifyError, errorMessage } from "./errors.js";
import { type KubeObject, keyOf, type ObjectSource } from "./informer.js";
import { type LeaderElectionOptions, LeaderElector } from "./leader-election.js";
import { controllerMetrics, watchEventsMetric } from "./metrics.js";
import { shardOf } from "./shard.js";
import { ShardElector, type ShardElectorOptions } from "./shard-elector.js";
import { dropShard, isShardAware } from "./sharded-informer.js";
import { WorkQueue } from "./workqueue.js";
import { NotLeaderError, notLeaderCause, type WriteGate } from "./write-gate.js";

export interface ReconcileOutcome {
  /** Reconcile this key again after this many milliseconds (e.g. at an expiry). */
  requeueAfter?: number;
}

export interface ReconcileContext {
  /** Aborted when this replica stops leading or the controller stops: wind down. */
  signal: AbortSignal;
  /** The controller's logger with the key on every line. */
  log: Logger;
}

export interface Secondary {
  informer: ObjectSource<KubeObject>;
  /** Names the source in the events metric (e.g. "pods"). */
  name?: string;
  /** The primary key an event on this object concerns, if any (from a label or owner reference). */
  primaryKey(obj: KubeObject): string | undefined;
  /**
   * Whether an update can change what the primary's reconcile decides (absent:
   * every update can). An update it rejects enqueues nothing: most updates to
   * a secondary are other components' bookkeeping (a kubelet's or kwok's
   * status patches) that the reconcile would read and do nothing about. It
   * must compare every field any reconcile reads of the object.
   */
  changed?(obj: KubeObject, old: KubeObject): boolean;
  /**
   * The versions the reconcile wrote itself (own-writes.ts): an add or update
   * that is exactly one of them is the echo of that write and enqueues nothing.
   */
  ownWrites?: { isEcho(obj: KubeObject): boolean };
}

export interface ControllerOptions {
  name: string;
  /**
   * Sharded, a source may be a ShardedInformer (sharded-informer.ts): it then
   * watches only the held shards' objects, told of each shard gained or lost.
   */
  primary: ObjectSource<KubeObject>;
  secondaries?: Secondary[];
  /** Make the world match the object named by `key`; nothing or {} means done. */
  reconcile(
    key: string,
    ctx: ReconcileContext,
  ): Promise<ReconcileOutcome | undefined> | Promise<void>;
  /** Keys reconciled at once (different keys; one key is never reconciled twice at once). */
  concurrency: number;
  /**
   * A key's priority in the work queue, asked at each add (workqueue.ts):
   * higher is reconciled first. Absent: FIFO.
   */
  priority?: (key: string) => number;
  /** Extra workers for keys of at least a priority (workqueue.ts). */
  priorityLane?: { minPriority: number; extra: number };
  /** Reconcile only while holding this Lease; absent: always. */
  leaderElection?: Omit<LeaderElectionOptions, "onStartedLeading" | "onStoppedLeading" | "log">;
  /** Reconcile only the keys of the shards this replica holds (instead of leaderElection). */
  sharding?: Omit<ShardElectorOptions, "onStarted" | "onStopped" | "log">;
  /** Re-enqueue every key this often, as a safety net (default 10 min). */
  resyncMs?: number;
  /** Per-key retry backoff after failures (default 100 ms doubling to 5 min). */
  backoff?: { baseMs: number; maxMs: number };
  registry: Registry;
  /** Metric name prefix, e.g. "sandbox_operator". */
  metricPrefix: string;
  log: Logger;
}

/** One stretch of leading: ends (aborts) when leadership is lost or the controller stops. */
interface Term {
  abort: AbortController;
  resync?: NodeJS.Timeout;
}

export class Controller {
  private readonly queue: WorkQueue;
  private readonly elector: LeaderElector | undefined;
  private readonly shards: ShardElector | undefined;
  /** The shard of the reconcile running in this async context (sharded only). */
  private readonly shardScope: AsyncLocalStorage<number> | undefined;
  /** Per held shard: its term (aborted when the shard is lost). */
  private readonly shardTerms = new Map<number, AbortController>();
  /** Per shard: reconciles in flight (a shard is released only once they end). */
  private readonly inFlight = new Map<number, Set<Promise<void>>>();
  private readonly informers: ObjectSource<KubeObject>[];
  private readonly metrics: ReturnType<typeof controllerMetrics>;
  private readonly log: Logger;
  /** Watch events per source: received, and those that enqueued a key. */
  private readonly eventCounts = new Map<
    string,
    { received: number; enqueued: number; echoes: number }
  >();
  private term: Term | undefined;
  /** Without leader election: writes are allowed until stop() has drained. */
  private stopped = false;

  constructor(private readonly opts: ControllerOptions) {
    this.writeGate = Object.assign(
      (): void => {
        const shard = this.shardScope?.getStore();
        if (shard !== undefined) {
          if (this.stopped || !this.shards!.holds(shard)) {
            throw new NotLeaderError(`${this.opts.name}: shard ${shard} is not ours (any more)`);
          }
          return;
        }
        if (!this.mayWrite()) {
          throw new NotLeaderError(`${this.opts.name}: not leading (any more); refusing to write`);
        }
      },
      // Sharded, the answer depends on the async context the write was made in;
      // the request's last check (at the socket) may run in another one.
      { contextual: !!opts.sharding },
    );
    this.log = opts.log.child({ controller: opts.name });
    this.informers = [opts.primary, ...(opts.secondaries ?? []).map((s) => s.informer)];
    const m = controllerMetrics(opts.registry, opts.metricPrefix);
    const controller = opts.name;
    this.metrics = m;
    this.queue = new WorkQueue({
      concurrency: opts.concurrency,
      backoffBaseMs: opts.backoff?.baseMs,
      backoffMaxMs: opts.backoff?.maxMs,
      ...(opts.priority ? { priority: opts.priority } : {}),
      ...(opts.priorityLane ? { priorityLane: opts.priorityLane } : {}),
      hooks: {
        depth: (n) => m.depth.set({ controller }, n),
        added: () => m.adds.inc({ controller }),
        waited: (s, key) => {
          m.wait.observe({ controller }, s);
          // Which keys wait behind which (bench/pools): per key, debug only.
          if (this.log.isLevelEnabled("debug"))
            this.log.debug({ key, waitMs: Math.round(s * 1000) }, "dequeued");
        },
        retried: () => m.retries.inc({ controller }),
      },
    });

    // Counted as plain numbers (read at scrape time, see watchEventsMetric):
    // a labelled metric per event would be work of its own on the hot path.
    const count = (source: string) => {
      const c = { received: 0, enqueued: 0, echoes: 0 };
      this.eventCounts.set(source, c);
      return c;
    };
    const primaryCount = count("primary");
    const enqueue = (obj: KubeObject) => {
      primaryCount.received++;
      primaryCount.enqueued++;
      this.add(keyOf(obj));
    };
    opts.primary.on({ add: enqueue, update: enqueue, delete: enqueue });
    (opts.secondaries ?? []).forEach((s, i) => {
      const c = count(s.name ?? `secondary-${i}`);
      const toPrimary = (obj: KubeObject, unless?: string) => {
        const key = s.primaryKey(obj);
        if (!key || key === unless) return undefined;
        this.add(key);
        return key;
      };
      s.informer.on({
        add: (obj) => {
          c.received++;
          if (s.ownWrites?.isEcho(obj)) {
            c.echoes++;
            return;
          }
          if (toPrimary(obj)) c.enqueued++;
        },
        update: (obj, old) => {
          c.received++;
          if (s.ownWrites?.isEcho(obj)) {
            c.echoes++;
            return;
          }
          if (s.changed && !s.changed(obj, old)) return;
          // The old version too: a label or owner that changed points at the
          // previous primary. Not the same key twice: the first add may
          // already be running, and a second would reconcile it again.
          const a = toPrimary(obj);
          const b = toPrimary(old, a);
          if (a || b) c.enqueued++;
        },
        delete: (obj) => {
          c.received++;
          if (toPrimary(obj)) c.enqueued++;
        },
      });
    });
    watchEventsMetric(opts.registry, opts.metricPrefix, opts.name, this.eventCounts);
    if (opts.leaderElection && opts.sharding) {
      throw new Error("a controller elects a leader or holds shards, not both");
    }
    if (opts.sharding) {
      this.shardScope = new AsyncLocalStorage<number>();
      this.shards = new ShardElector({
        ...opts.sharding,
        log: this.log,
        onStarted: (shard) => void this.startShard(shard),
        onStopped: (shard) => this.stopShard(shard),
        drain: async (shard) => {
          await Promise.all(this.inFlight.get(shard) ?? []);
        },
      });
    }
    if (opts.leaderElection) {
      this.elector = new LeaderElector({
        ...opts.leaderElection,
        log: this.log,
        onStartedLeading: () => void this.startWorkers(),
        onStoppedLeading: () => this.stopWorkers(),
      });
    }
  }

  start(): void {
    for (const informer of this.informers) informer.start();
    if (this.elector) this.elector.start();
    else if (this.shards) this.shards.start();
    else void this.startWorkers();
  }

  /** Every informer has listed once. */
  ready(): boolean {
    return this.informers.every((i) => i.hasSynced());
  }

  /** Queue a key from a source that is not an informer (e.g. an external system's events). */
  enqueue(key: string): void {
    this.add(key);
  }

  /** Leading, or (sharded) holding at least one shard. */
  isLeader(): boolean {
    if (this.shards) return this.shards.heldShards().length > 0;
    return this.elector ? this.elector.isLeader() : true;
  }

  /** Shards held now (sharded only; empty otherwise). */
  heldShards(): number[] {
    return this.shards?.heldShards() ?? [];
  }

  /** The shard of a key (sharded only). */
  shardOf(key: string): number | undefined {
    return this.opts.sharding ? shardOf(key, this.opts.sharding.shards) : undefined;
  }

  /** Queue `key` if this replica reconciles it (sharded: holds its shard). */
  private add(key: string): void {
    if (this.shards && !this.shards.believesHeld(shardOf(key, this.opts.sharding!.shards))) return;
    this.queue.add(key);
  }

  /**
   * Whether this replica may write now: it holds the Lease by the clocks (not
   * just by the last timer that ran), or, without leader election, it has not
   * stopped. Finding the renew deadline passed steps down on the spot, which
   * aborts every in-flight reconcile.
   */
  mayWrite(): boolean {
    if (this.shards) return !this.stopped && this.shards.holds(0);
    return this.elector ? this.elector.holdsLease() : !this.stopped;
  }

  /**
   * The gate for this controller's writers (see gateWrites). Sharded, a write
   * made inside a reconcile needs that reconcile's shard; any other needs shard 0.
   */
  readonly writeGate: WriteGate;

  /** Informers whose watches are down, with why: the cache may be stale (for /readyz). */
  watchProblems(): string[] {
    return this.informers.flatMap((i) => i.problems());
  }

  /**
   * Stop taking work, wait for in-flight reconciles, run `drain` (e.g. flush
   * Events) while still allowed to write, release the Lease (by default), stop watching.
   */
  async stop({
    release = true,
    drain,
  }: {
    release?: boolean;
    drain?: () => Promise<void>;
  } = {}): Promise<void> {
    this.stopWorkers();
    for (const shard of [...this.shardTerms.keys()]) this.stopShard(shard);
    await this.queue.shutdown();
    await drain?.();
    this.stopped = true;
    await this.elector?.stop({ release });
    await this.shards?.stop({ release });
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  private async startWorkers(): Promise<void> {
    this.stopWorkers();
    const term: Term = { abort: termController() };
    this.term = term;
    // Reconciling from a cache that has not listed yet would see objects as
    // missing; from one whose watch is down (leadership regained after an
    // apiserver outage), it would act on the world as it was.
    await Promise.all(this.informers.map((i) => i.upToDate(term.abort.signal)));
    if (term.abort.signal.aborted) return;
    const enqueueAll = () => {
      for (const obj of this.opts.primary.list()) this.queue.add(keyOf(obj));
    };
    enqueueAll();
    term.resync = setInterval(enqueueAll, this.opts.resyncMs ?? 600_000).unref();
    this.queue.start((key) => this.work(key, term.abort.signal));
    this.log.info({ keys: this.opts.primary.list().length }, "workers started");
  }

  /** A shard gained: once the caches are up to date, reconcile each of its keys. */
  private async startShard(shard: number): Promise<void> {
    this.shardTerms.get(shard)?.abort();
    const term = termController();
    this.shardTerms.set(shard, term);
    // Per-shard watches start cold: the shard's keys wait for their LIST.
    for (const i of this.informers) if (isShardAware(i)) i.addShard(shard);
    await Promise.all(this.informers.map((i) => i.upToDate(term.signal)));
    if (term.signal.aborted) return;
    const shards = this.opts.sharding!.shards;
    let keys = 0;
    const enqueueShard = () => {
      const add = (key: string | undefined) => {
        if (key !== undefined && shardOf(key, shards) === shard) {
          keys++;
          this.queue.add(key);
        }
      };
      for (const obj of this.opts.primary.list()) add(keyOf(obj));
      // And keys known only from secondaries (e.g. objects not yet labelled for
      // a shard, whose events came while another replica held it).
      for (const s of this.opts.secondaries ?? [])
        for (const o of s.informer.list()) add(s.primaryKey(o));
    };
    enqueueShard();
    const resync = setInterval(enqueueShard, this.opts.resyncMs ?? 600_000).unref();
    term.signal.addEventListener("abort", () => clearInterval(resync), { once: true });
    // One queue for every shard: started with the first.
    if (!this.term) {
      this.term = { abort: termController() };
      this.queue.start((key) => this.work(key, this.shardTerms.get(shardOf(key, shards))?.signal));
    }
    this.log.info({ shard, keys }, "shard started");
  }

  private stopShard(shard: number): void {
    const term = this.shardTerms.get(shard);
    if (!term) return;
    this.shardTerms.delete(shard);
    term.abort(new NotLeaderError(`${this.opts.name}: shard ${shard} stopped`));
    // The shard's watches go once its aborted reconciles have ended (they may
    // still read the cache); not if the shard came back meanwhile.
    void Promise.all(this.inFlight.get(shard) ?? []).then(() =>
      dropShard(this.informers, shard, () => this.shardTerms.has(shard)),
    );
  }

  private stopWorkers(): void {
    const term = this.term;
    if (!term) return;
    this.term = undefined;
    this.queue.pause();
    clearInterval(term.resync);
    term.abort.abort(new NotLeaderError(`${this.opts.name}: workers stopped`));
    this.log.info("workers stopped");
  }

  private async work(key: string, signal: AbortSignal | undefined): Promise<void> {
    // Sharded: a key whose shard is not held (queued before the shard moved) is the new holder's.
    if (!signal || signal.aborted) {
      this.queue.forget(key);
      return;
    }
    if (this.shardScope) {
      const shard = shardOf(key, this.opts.sharding!.shards);
      const running = this.shardScope.run(shard, () => this.reconcileKey(key, signal));
      const set = this.inFlight.get(shard) ?? new Set();
      this.inFlight.set(shard, set.add(running));
      try {
        return await running;
      } finally {
        set.delete(running);
      }
    }
    return this.reconcileKey(key, signal);
  }

  private async reconcileKey(key: string, signal: AbortSignal): Promise<void> {
    // A child logger per reconcile costs more than most reconciles' own work:
    // made only when something is logged.
    let keyLog: Logger | undefined;
    const log = () => (keyLog ??= this.log.child({ key }));
    const controller = this.opts.name;
    const stopTimer = this.metrics.duration.startTimer({ controller });
    let result: "success" | "requeue" | "error" = "success";
    // Where a claim's or sandbox's time goes (bench/pools/trace.ts): one line per reconcile start and end.
    const trace = this.log.isLevelEnabled("debug");
    const started = trace ? performance.now() : 0;
    if (trace) log().debug("reconcile started");
    try {
      const outcome = await this.opts.reconcile(key, {
        signal,
        get log() {
          return log();
        },
      });
      this.queue.forget(key);
      if (outcome?.requeueAfter !== undefined) {
        result = "requeue";
        this.queue.addAfter(key, outcome.requeueAfter);
      }
    } catch (err) {
      result = "error";
      if (signal.aborted || notLeaderCause(err)) {
        // Leadership lost (or stopping): whoever leads next reconciles every key.
        this.queue.forget(key);
        log().debug({ err: errorMessage(err) }, "reconcile abandoned: no longer leading");
        return;
      }
      const kind = classifyError(err);
      this.metrics.errors.inc({ controller, kind });
      if (kind === "permanent") {
        // Retrying cannot fix a user's mistake (the reconciler reports it on the
        // object); the next change to the object brings the key back.
        this.queue.forget(key);
        log().warn({ err: errorMessage(err) }, "reconcile failed permanently; not retrying");
      } else {
        const retryInMs = this.queue.addRateLimited(key, { immediate: kind === "conflict" });
        // A conflict (stale cache) or a 404 (deleted mid-reconcile, e.g. a claim
        // removed while its status was written) is routine: the retry reads a
        // fresher cache and ends at once. Only transient failures are worth a warning.
        const level = kind === "transient" ? "warn" : "debug";
        log()[level]({ err: errorMessage(err), kind, retryInMs }, "reconcile failed; will retry");
      }
    } finally {
      stopTimer();
      this.metrics.reconciles.inc({ controller, result });
      if (trace)
        log().debug({ ms: Math.round(performance.now() - started), result }, "reconcile ended");
    }
  }
}

/**
 * The abort controller of a term of leadership (or of a shard). Every request
 * of every worker listens to its one signal and removes its listener when it
 * ends, so a burst of concurrent requests (a pool's refill) is not a leak:
 * Node's warning at 11 listeners would be noise.
 */
function termController(): AbortController {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  return controller;
}
