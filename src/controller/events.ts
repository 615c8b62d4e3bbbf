// Kubernetes Events (core/v1, what `kubectl describe` shows) with aggregation:
// the same event about the same object within the window bumps the count of
// the existing Event, at most once per flush interval, so a flapping object
// cannot flood the API. Recording never throws: an Event is not worth failing
// a reconcile for.
import { randomBytes } from "node:crypto";
import * as k8s from "@kubernetes/client-node";
import type { Logger } from "../observability/logger.js";

export interface InvolvedObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
}

export interface EventRecorderOptions {
  kubeConfig: k8s.KubeConfig;
  component: string;
  instance: string;
  log: Logger;
  /** How long repeats of an event are folded into one Event object (default 10 min). */
  windowMs?: number;
  /** How often a folded count is written back (default 60 s). */
  flushMs?: number;
  /** Distinct events remembered for folding (default 4096). */
  maxTracked?: number;
}

interface Tracked {
  name: string;
  namespace: string;
  count: number;
  written: number;
  firstSeen: number;
  lastSeen: number;
  timer?: NodeJS.Timeout;
}

export class EventRecorder {
  private readonly api: k8s.CoreV1Api;
  private readonly tracked = new Map<string, Tracked>();
  private readonly windowMs: number;
  private readonly flushMs: number;
  private readonly maxTracked: number;

  constructor(private readonly opts: EventRecorderOptions) {
    this.api = opts.kubeConfig.makeApiClient(k8s.CoreV1Api);
    this.windowMs = opts.windowMs ?? 600_000;
    this.flushMs = opts.flushMs ?? 60_000;
    this.maxTracked = opts.maxTracked ?? 4096;
  }

  record(obj: InvolvedObject, type: "Normal" | "Warning", reason: string, message: string): void {
    void this.recordAsync(obj, type, reason, message).catch((err) =>
      this.opts.log.warn({ err: String(err), reason }, "could not record event"),
    );
  }

  /** Write out folded counts now (on shutdown). */
  async flush(): Promise<void> {
    await Promise.all(
      [...this.tracked.values()].filter((t) => t.count > t.written).map((t) => this.writeCount(t)),
    );
  }

  private async recordAsync(obj: InvolvedObject, type: string, reason: string, message: string) {
    const now = Date.now();
    const key = [obj.metadata.uid, type, reason, message].join("\u0000");
    const seen = this.tracked.get(key);
    if (seen && now - seen.firstSeen < this.windowMs) {
      seen.count++;
      seen.lastSeen = now;
      seen.timer ??= setTimeout(() => void this.writeCount(seen), this.flushMs).unref();
      return;
    }
    const namespace = obj.metadata.namespace ?? "default";
    const name = `${obj.metadata.name}.${randomBytes(8).toString("hex")}`;
    const t: Tracked = { name, namespace, count: 1, written: 1, firstSeen: now, lastSeen: now };
    this.remember(key, t);
    await this.api.createNamespacedEvent({
      namespace,
      body: {
        metadata: { name, namespace },
        involvedObject: {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          name: obj.metadata.name,
          namespace,
          uid: obj.metadata.uid,
          resourceVersion: obj.metadata.resourceVersion,
        },
        type,
        reason,
        message,
        count: 1,
        firstTimestamp: new Date(now),
        lastTimestamp: new Date(now),
        source: { component: this.opts.component },
        reportingComponent: this.opts.component,
        reportingInstance: this.opts.instance,
      },
    });
  }

  private async writeCount(t: Tracked): Promise<void> {
    t.timer = undefined;
    const count = t.count;
    try {
      await this.api.patchNamespacedEvent(
        {
          name: t.name,
          namespace: t.namespace,
          body: { count, lastTimestamp: new Date(t.lastSeen) },
        },
        k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
      );
      t.written = count;
    } catch (err) {
      this.opts.log.warn({ err: String(err), event: t.name }, "could not update event count");
    }
  }

  /** Bounded memory: forget the oldest entry when full (Map keeps insertion order). */
  private remember(key: string, t: Tracked): void {
    this.tracked.delete(key);
    this.tracked.set(key, t);
    if (this.tracked.size > this.maxTracked) {
      const [oldestKey, oldest] = this.tracked.entries().next().value as [string, Tracked];
      if (oldest.timer) clearTimeout(oldest.timer);
      this.tracked.delete(oldestKey);
    }
  }
}
