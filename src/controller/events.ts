// Kubernetes Events (events.k8s.io/v1; `kubectl describe` and `kubectl events`
// show them) with aggregation: the same event about the same object within the
// window becomes one Event whose series count grows, written back at most once
// per flush interval, so a flapping object cannot flood the API. Memory is
// bounded (LRU of the events being folded). Recording never throws: an Event
// is not worth failing a reconcile for.
//
// Creates and the batched count updates are writes like any other: once this
// replica has lost its Lease, the KubeConfig's write gate refuses them, a
// pending count flush included (the new leader records what it sees itself).
// A series whose Event could not be created is dropped, so that a repeat
// (after leadership comes back, say) starts a new Event instead of counting
// into one that does not exist.
//
// Events are written a few at a time (as client-go's broadcaster writes them
// one by one), the rest queued: a burst of work (claims, refills) records
// Events by the hundred, and written all at once they would take the
// apiserver from the writes someone is waiting for. Past a bound the queue
// drops new events (client-go's broadcaster does the same).
import { randomBytes } from "node:crypto";
import type * as k8s from "@kubernetes/client-node";
import type { Logger } from "../observability/logger.js";
import { ConcurrencyLimit } from "./concurrency-limit.js";
import { apiStatus, errorMessage } from "./errors.js";
import { microTime, rawRequest } from "./raw-request.js";
import { notLeaderCause } from "./write-gate.js";

export interface InvolvedObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
}

export type EventType = "Normal" | "Warning";

export interface EventRecorderOptions {
  kubeConfig: k8s.KubeConfig;
  /** reportingController, e.g. "sandbox-operator". */
  component: string;
  /** reportingInstance: this replica, e.g. the pod name. */
  instance: string;
  log: Logger;
  /** How long repeats of an event fold into one Event object (default 10 min). */
  windowMs?: number;
  /** How often a grown count is written back (default 30 s). */
  flushMs?: number;
  /** Distinct events remembered for folding (default 4096). */
  maxTracked?: number;
  /** Event writes in flight at once (default 2); the others wait. */
  maxInFlight?: number;
  /** Event writes waiting at most (default 1000); past that new ones are dropped. */
  maxQueued?: number;
}

interface Series {
  name: string;
  namespace: string;
  count: number;
  written: number;
  firstSeen: number;
  lastSeen: number;
  /** Settles once the Event exists (or failed to be created). */
  created: Promise<boolean>;
  timer?: NodeJS.Timeout;
}

const EVENTS = "/apis/events.k8s.io/v1/namespaces";

export class EventRecorder {
  private readonly series = new Map<string, Series>();
  private readonly pending = new Set<Promise<unknown>>();
  private readonly windowMs: number;
  private readonly flushMs: number;
  private readonly maxTracked: number;
  private readonly writes: ConcurrencyLimit;

  constructor(private readonly opts: EventRecorderOptions) {
    this.writes = new ConcurrencyLimit(opts.maxInFlight ?? 2, opts.maxQueued ?? 1000);
    this.windowMs = opts.windowMs ?? 600_000;
    this.flushMs = opts.flushMs ?? 30_000;
    this.maxTracked = opts.maxTracked ?? 4096;
  }

  /** Record an event about `obj`; `action` says what was done (default: the reason). */
  record(
    obj: InvolvedObject,
    type: EventType,
    reason: string,
    message: string,
    action = reason,
  ): void {
    try {
      const now = Date.now();
      const { uid, name, namespace } = obj.metadata;
      const key = [uid ?? `${namespace}/${name}`, type, reason, action, message].join("\u0000");
      const seen = this.series.get(key);
      if (seen && now - seen.firstSeen < this.windowMs) {
        seen.count++;
        seen.lastSeen = now;
        this.touch(key, seen);
        seen.timer ??= setTimeout(() => this.track(this.writeCount(seen)), this.flushMs).unref();
        return;
      }
      if (seen) this.forget(key, seen);
      const s: Series = {
        // Random suffix, as client-go does: names must not collide across replicas.
        name: `${(name ?? "unknown").slice(0, 200)}.${randomBytes(8).toString("hex")}`,
        namespace: namespace ?? "default",
        count: 1,
        written: 1,
        firstSeen: now,
        lastSeen: now,
        created: Promise.resolve(false),
      };
      s.created = this.create(obj, s, type, reason, message, action);
      this.track(s.created);
      this.touch(key, s);
    } catch (err) {
      this.opts.log.warn({ err: String(err), reason }, "could not record an event");
    }
  }

  /** Write out grown counts and wait for in-flight writes (e.g. on shutdown). Never rejects. */
  async flush(): Promise<void> {
    for (const s of this.series.values()) {
      if (s.count > s.written) this.track(this.writeCount(s));
    }
    while (this.pending.size > 0) await Promise.all(this.pending);
  }

  private track(p: Promise<unknown>): void {
    this.pending.add(p);
    const done = () => this.pending.delete(p);
    p.then(done, done);
  }

  private async create(
    obj: InvolvedObject,
    s: Series,
    type: EventType,
    reason: string,
    message: string,
    action: string,
  ): Promise<boolean> {
    try {
      const write = this.writes.tryRun(() =>
        rawRequest(this.opts.kubeConfig, "POST", `${EVENTS}/${s.namespace}/events`, {
          body: {
            apiVersion: "events.k8s.io/v1",
            kind: "Event",
            metadata: { name: s.name, namespace: s.namespace },
            eventTime: microTime(new Date(s.firstSeen)),
            reportingController: this.opts.component,
            reportingInstance: this.opts.instance.slice(0, 128),
            action: action.slice(0, 128),
            reason: reason.slice(0, 128),
            // The apiserver refuses notes over 1 kB.
            note: truncateBytes(message, 1024),
            type,
            regarding: {
              apiVersion: obj.apiVersion,
              kind: obj.kind,
              name: obj.metadata.name,
              namespace: obj.metadata.namespace,
              uid: obj.metadata.uid,
              resourceVersion: obj.metadata.resourceVersion,
            },
          },
        }),
      );
      if (!write) throw new EventQueueFullError();
      await write;
      return true;
    } catch (err) {
      s.firstSeen = Number.NEGATIVE_INFINITY;
      this.logFailure(err, { reason }, "could not record an event");
      return false;
    }
  }

  private async writeCount(s: Series): Promise<void> {
    clearTimeout(s.timer);
    s.timer = undefined;
    if (!(await s.created)) return;
    const count = s.count;
    if (count <= s.written) return;
    try {
      const write = this.writes.tryRun(() =>
        rawRequest(this.opts.kubeConfig, "PATCH", `${EVENTS}/${s.namespace}/events/${s.name}`, {
          contentType: "application/merge-patch+json",
          body: { series: { count, lastObservedTime: microTime(new Date(s.lastSeen)) } },
        }),
      );
      // Full: the count stays grown and goes out with a later flush.
      if (!write) return;
      await write;
      s.written = Math.max(s.written, count);
    } catch (err) {
      // Gone (the apiserver's event TTL): the next repeat starts a new Event.
      if (apiStatus(err) === 404) s.firstSeen = Number.NEGATIVE_INFINITY;
      this.logFailure(err, { event: s.name }, "could not update an event");
    }
  }

  /** A refusal by the write gate is expected after losing the Lease: not worth a warning. */
  private logFailure(err: unknown, fields: object, msg: string): void {
    const level = notLeaderCause(err) ? "debug" : "warn";
    this.opts.log[level]({ err: errorMessage(err), ...fields }, msg);
  }

  /** Most recently used last; evict the least recently used beyond the bound. */
  private touch(key: string, s: Series): void {
    this.series.delete(key);
    this.series.set(key, s);
    while (this.series.size > this.maxTracked) {
      const [oldestKey, oldest] = this.series.entries().next().value as [string, Series];
      this.forget(oldestKey, oldest);
    }
  }

  private forget(key: string, s: Series): void {
    this.series.delete(key);
    // Its last repeats still deserve to be counted.
    if (s.count > s.written) this.track(this.writeCount(s));
    else clearTimeout(s.timer);
  }
}

/** Too many Event writes waiting: this one is dropped. */
export class EventQueueFullError extends Error {
  constructor() {
    super("too many events waiting to be written; dropped");
    this.name = "EventQueueFullError";
  }
}

function truncateBytes(text: string, max: number): string {
  const buf = Buffer.from(text, "utf8");
  if (buf.length <= max) return text;
  // Cut on a character boundary: decoding a cut multi-byte sequence yields U+FFFD, so drop it.
  return `${buf
    .subarray(0, max - 3)
    .toString("utf8")
    .replace(/\uFFFD$/, "")}...`;
}
