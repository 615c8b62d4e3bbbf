// A controller: informers feed keys into a work queue; workers reconcile keys.
// Generic: it knows keys, not what they name.
//
// Informers run on every replica so a new leader starts with a warm cache;
// workers run only while this replica leads (when leader election is on).
// Gaining leadership enqueues every key: level-triggered reconciles make that
// safe, and it is what makes a restart or failover converge.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { Logger } from "../observability/logger.js";
import { errorMessage, isConflict, isPermanent } from "./errors.js";
import { type Informer, type KubeObject, keyOf } from "./informer.js";
import { type LeaderElectionOptions, LeaderElector } from "./leader-election.js";
import { WorkQueue } from "./workqueue.js";

export interface ReconcileOutcome {
  /** Reconcile this key again after this many milliseconds (e.g. at an expiry). */
  requeueAfter?: number;
}

export interface Secondary {
  informer: Informer<KubeObject>;
  /** The primary key an event on this object concerns, if any (e.g. from a label or owner reference). */
  primaryKey(obj: KubeObject): string | undefined;
}

export interface ControllerOptions {
  name: string;
  primary: Informer<KubeObject>;
  secondaries?: Secondary[];
  reconcile(key: string): Promise<ReconcileOutcome | undefined>;
  concurrency: number;
  leaderElection?: Omit<LeaderElectionOptions, "onStartedLeading" | "onStoppedLeading" | "log">;
  /** Re-enqueue every key this often, as a safety net (default 10 min). */
  resyncMs?: number;
  registry: Registry;
  metricPrefix: string;
  log: Logger;
}

export class Controller {
  private readonly queue: WorkQueue;
  private readonly elector: LeaderElector | undefined;
  private readonly metrics: ReturnType<typeof controllerMetrics>;
  private readonly log: Logger;
  private leading = false;
  private resync: NodeJS.Timeout | undefined;

  constructor(private readonly opts: ControllerOptions) {
    this.log = opts.log.child({ controller: opts.name });
    this.metrics = controllerMetrics(opts.registry, opts.metricPrefix, opts.name);
    this.queue = new WorkQueue({
      concurrency: opts.concurrency,
      metrics: {
        depth: (n) => this.metrics.depth.set(n),
        added: () => this.metrics.adds.inc(),
        waited: (s) => this.metrics.wait.observe(s),
        retried: () => this.metrics.retries.inc(),
      },
    });
    const enqueue = (obj: KubeObject) => this.queue.add(keyOf(obj));
    opts.primary.on({ add: enqueue, update: enqueue, delete: enqueue });
    for (const s of opts.secondaries ?? []) {
      const toPrimary = (obj: KubeObject) => {
        const key = s.primaryKey(obj);
        if (key) this.queue.add(key);
      };
      s.informer.on({ add: toPrimary, update: toPrimary, delete: toPrimary });
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
    this.opts.primary.start();
    for (const s of this.opts.secondaries ?? []) s.informer.start();
    if (this.elector) this.elector.start();
    else void this.startWorkers();
  }

  /** Every informer has listed once. */
  ready(): boolean {
    return [this.opts.primary, ...(this.opts.secondaries ?? []).map((s) => s.informer)].every((i) =>
      i.hasSynced(),
    );
  }

  isLeader(): boolean {
    return this.elector ? this.elector.isLeader() : true;
  }

  /** Stop taking work, drain what is in flight, then release the lease and stop watching. */
  async stop({ release = true } = {}): Promise<void> {
    this.stopWorkers();
    await this.queue.shutdown();
    await this.elector?.stop({ release });
    await Promise.all(
      [this.opts.primary, ...(this.opts.secondaries ?? []).map((s) => s.informer)].map((i) =>
        i.stop(),
      ),
    );
  }

  private async startWorkers(): Promise<void> {
    this.leading = true;
    while (!this.ready()) {
      if (!this.leading) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!this.leading) return;
    for (const obj of this.opts.primary.list()) this.queue.add(keyOf(obj));
    this.queue.start((key) => this.work(key));
    const resyncMs = this.opts.resyncMs ?? 600_000;
    this.resync = setInterval(() => {
      for (const obj of this.opts.primary.list()) this.queue.add(keyOf(obj));
    }, resyncMs).unref();
    this.log.info({ keys: this.opts.primary.list().length }, "workers started");
  }

  private stopWorkers(): void {
    this.leading = false;
    this.queue.pause();
    if (this.resync) clearInterval(this.resync);
  }

  private async work(key: string): Promise<void> {
    const stopTimer = this.metrics.duration.startTimer();
    let result = "success";
    try {
      const outcome = await this.opts.reconcile(key);
      this.queue.forget(key);
      if (outcome?.requeueAfter !== undefined) {
        result = "requeue";
        this.queue.addAfter(key, outcome.requeueAfter);
      }
    } catch (err) {
      if (isPermanent(err)) {
        // Retrying cannot fix a user's mistake; the reconciler reported it on the object.
        result = "permanent_error";
        this.queue.forget(key);
        this.log.warn(
          { key, reason: err.reason, err: err.message },
          "reconcile failed permanently",
        );
      } else {
        result = isConflict(err) ? "conflict" : "error";
        const retryInMs = this.queue.addRateLimited(key);
        const level = result === "conflict" ? "debug" : "warn";
        this.log[level]({ key, err: errorMessage(err), retryInMs }, "reconcile failed; will retry");
      }
    } finally {
      stopTimer();
      this.metrics.reconciles.inc({ controller: this.opts.name, result });
    }
  }
}

function controllerMetrics(registry: Registry, prefix: string, controller: string) {
  const labels = { controller };
  return {
    reconciles: new Counter({
      name: `${prefix}_reconcile_total`,
      help: "Reconciles by result: success, requeue, conflict, error, permanent_error",
      labelNames: ["controller", "result"] as const,
      registers: [registry],
    }),
    duration: new Histogram({
      name: `${prefix}_reconcile_duration_seconds`,
      help: "Time spent in one reconcile",
      labelNames: ["controller"] as const,
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }).labels(labels),
    depth: new Gauge({
      name: `${prefix}_workqueue_depth`,
      help: "Keys waiting to be reconciled",
      labelNames: ["controller"] as const,
      registers: [registry],
    }).labels(labels),
    adds: new Counter({
      name: `${prefix}_workqueue_adds_total`,
      help: "Keys added to the work queue",
      labelNames: ["controller"] as const,
      registers: [registry],
    }).labels(labels),
    wait: new Histogram({
      name: `${prefix}_workqueue_wait_seconds`,
      help: "Time a key waits in the queue before a worker takes it",
      labelNames: ["controller"] as const,
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60],
      registers: [registry],
    }).labels(labels),
    retries: new Counter({
      name: `${prefix}_workqueue_retries_total`,
      help: "Keys requeued with backoff after a failure",
      labelNames: ["controller"] as const,
      registers: [registry],
    }).labels(labels),
  };
}
