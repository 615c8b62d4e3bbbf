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
import type { Registry } from "prom-client";
import type { Logger } from "../observability/logger.js";
import { classifyError, errorMessage } from "./errors.js";
import { type Informer, type KubeObject, keyOf } from "./informer.js";
import { type LeaderElectionOptions, LeaderElector } from "./leader-election.js";
import { controllerMetrics } from "./metrics.js";
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
  informer: Informer<KubeObject>;
  /** The primary key an event on this object concerns, if any (from a label or owner reference). */
  primaryKey(obj: KubeObject): string | undefined;
}

export interface ControllerOptions {
  name: string;
  primary: Informer<KubeObject>;
  secondaries?: Secondary[];
  /** Make the world match the object named by `key`; nothing or {} means done. */
  reconcile(
    key: string,
    ctx: ReconcileContext,
  ): Promise<ReconcileOutcome | undefined> | Promise<void>;
  /** Keys reconciled at once (different keys; one key is never reconciled twice at once). */
  concurrency: number;
  /** Reconcile only while holding this Lease; absent: always. */
  leaderElection?: Omit<LeaderElectionOptions, "onStartedLeading" | "onStoppedLeading" | "log">;
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
  private readonly informers: Informer<KubeObject>[];
  private readonly metrics: ReturnType<typeof controllerMetrics>;
  private readonly log: Logger;
  private term: Term | undefined;
  /** Without leader election: writes are allowed until stop() has drained. */
  private stopped = false;

  constructor(private readonly opts: ControllerOptions) {
    this.log = opts.log.child({ controller: opts.name });
    this.informers = [opts.primary, ...(opts.secondaries ?? []).map((s) => s.informer)];
    const m = controllerMetrics(opts.registry, opts.metricPrefix);
    const controller = opts.name;
    this.metrics = m;
    this.queue = new WorkQueue({
      concurrency: opts.concurrency,
      backoffBaseMs: opts.backoff?.baseMs,
      backoffMaxMs: opts.backoff?.maxMs,
      hooks: {
        depth: (n) => m.depth.set({ controller }, n),
        added: () => m.adds.inc({ controller }),
        waited: (s) => m.wait.observe({ controller }, s),
        retried: () => m.retries.inc({ controller }),
      },
    });

    const enqueue = (obj: KubeObject) => this.queue.add(keyOf(obj));
    opts.primary.on({ add: enqueue, update: enqueue, delete: enqueue });
    for (const s of opts.secondaries ?? []) {
      const toPrimary = (obj: KubeObject) => {
        const key = s.primaryKey(obj);
        if (key) this.queue.add(key);
      };
      // The old version too: a label or owner that changed points at the previous primary.
      s.informer.on({
        add: toPrimary,
        update: (obj, old) => {
          toPrimary(obj);
          toPrimary(old);
        },
        delete: toPrimary,
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
    else void this.startWorkers();
  }

  /** Every informer has listed once. */
  ready(): boolean {
    return this.informers.every((i) => i.hasSynced());
  }

  /** Queue a key from a source that is not an informer (e.g. an external system's events). */
  enqueue(key: string): void {
    this.queue.add(key);
  }

  isLeader(): boolean {
    return this.elector ? this.elector.isLeader() : true;
  }

  /**
   * Whether this replica may write now: it holds the Lease by the clocks (not
   * just by the last timer that ran), or, without leader election, it has not
   * stopped. Finding the renew deadline passed steps down on the spot, which
   * aborts every in-flight reconcile.
   */
  mayWrite(): boolean {
    return this.elector ? this.elector.holdsLease() : !this.stopped;
  }

  /** The gate for this controller's writers (see gateWrites). */
  readonly writeGate: WriteGate = () => {
    if (!this.mayWrite()) {
      throw new NotLeaderError(`${this.opts.name}: not leading (any more); refusing to write`);
    }
  };

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
    await this.queue.shutdown();
    await drain?.();
    this.stopped = true;
    await this.elector?.stop({ release });
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  private async startWorkers(): Promise<void> {
    this.stopWorkers();
    const term: Term = { abort: new AbortController() };
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

  private stopWorkers(): void {
    const term = this.term;
    if (!term) return;
    this.term = undefined;
    this.queue.pause();
    clearInterval(term.resync);
    term.abort.abort(new NotLeaderError(`${this.opts.name}: workers stopped`));
    this.log.info("workers stopped");
  }

  private async work(key: string, signal: AbortSignal): Promise<void> {
    // A child logger per reconcile costs more than most reconciles' own work:
    // made only when something is logged.
    let keyLog: Logger | undefined;
    const log = () => (keyLog ??= this.log.child({ key }));
    const controller = this.opts.name;
    const stopTimer = this.metrics.duration.startTimer({ controller });
    let result: "success" | "requeue" | "error" = "success";
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
        const level = kind === "conflict" ? "debug" : "warn";
        log()[level]({ err: errorMessage(err), kind, retryInMs }, "reconcile failed; will retry");
      }
    } finally {
      stopTimer();
      this.metrics.reconciles.inc({ controller, result });
    }
  }
}
