// The controller's Prometheus metrics. One set per registry and prefix, shared
// by every controller registered in it and told apart by the "controller" label
// (prom-client refuses to register a name twice).
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

export function controllerMetrics(registry: Registry, prefix: string) {
  const registers = [registry];
  const labelNames = ["controller"] as const;
  const once = <M>(name: string, make: (name: string) => M): M =>
    (registry.getSingleMetric(`${prefix}_${name}`) as M | undefined) ?? make(`${prefix}_${name}`);
  return {
    reconciles: once(
      "reconcile_total",
      (name) =>
        new Counter({
          name,
          help: "Reconciles by result: success, requeue (success with a requeue-after) or error",
          labelNames: ["controller", "result"] as const,
          registers,
        }),
    ),
    errors: once(
      "reconcile_errors_total",
      (name) =>
        new Counter({
          name,
          help: "Failed reconciles by kind: permanent (not retried), conflict, notFound, transient",
          labelNames: ["controller", "kind"] as const,
          registers,
        }),
    ),
    duration: once(
      "reconcile_duration_seconds",
      (name) =>
        new Histogram({
          name,
          help: "Time spent in one reconcile",
          labelNames,
          buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
          registers,
        }),
    ),
    depth: once(
      "workqueue_depth",
      (name) => new Gauge({ name, help: "Keys waiting to be reconciled", labelNames, registers }),
    ),
    adds: once(
      "workqueue_adds_total",
      (name) => new Counter({ name, help: "Keys added to the work queue", labelNames, registers }),
    ),
    wait: once(
      "workqueue_wait_seconds",
      (name) =>
        new Histogram({
          name,
          help: "Time from a key's add to the start of its reconcile",
          labelNames,
          buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60],
          registers,
        }),
    ),
    retries: once(
      "workqueue_retries_total",
      (name) =>
        new Counter({
          name,
          help: "Keys requeued with backoff after a failed reconcile",
          labelNames,
          registers,
        }),
    ),
  };
}

type EventCounts = ReadonlyMap<string, { received: number; enqueued: number; echoes: number }>;
/** Per registry, the controllers' event counts the watch-events metric reports. */
const eventCounts = new WeakMap<Registry, { controller: string; counts: EventCounts }[]>();

/**
 * Watch events a controller's handlers received, per source, and how many of
 * them enqueued a key (an event found irrelevant enqueues nothing). Read from
 * the controller's own plain counters at scrape time.
 */
export function watchEventsMetric(
  registry: Registry,
  prefix: string,
  controller: string,
  counts: EventCounts,
): void {
  const list = eventCounts.get(registry) ?? [];
  eventCounts.set(registry, list);
  list.push({ controller, counts });
  const name = `${prefix}_watch_events_total`;
  if (registry.getSingleMetric(name)) return;
  new Counter({
    name,
    help: "Watch events received by a controller's handlers, by source; result=enqueued counts those that queued a key, result=echo those skipped as the echo of our own write",
    labelNames: ["controller", "source", "result"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const { controller, counts } of eventCounts.get(registry) ?? []) {
        for (const [source, c] of counts) {
          this.inc({ controller, source, result: "received" }, c.received);
          this.inc({ controller, source, result: "enqueued" }, c.enqueued);
          if (c.echoes) this.inc({ controller, source, result: "echo" }, c.echoes);
        }
      }
    },
  });
}
