// Sandbox-level metrics (the generic controller registers its own reconcile and
// queue metrics). Prometheus naming: sandbox_operator_<thing>_<unit>.
import { Gauge, Histogram, type Registry } from "prom-client";

export const METRIC_PREFIX = "sandbox_operator";

export interface SandboxMetrics {
  /** Set from the cache on every scrape, so it is never stale. */
  sandboxes: Gauge<"phase" | "backend">;
  readySeconds: Histogram<"backend">;
}

export function sandboxMetrics(
  registry: Registry,
  countByPhase: () => Iterable<{ phase: string; backend: string; count: number }>,
): SandboxMetrics {
  const sandboxes = new Gauge({
    name: `${METRIC_PREFIX}_sandboxes`,
    help: "Sandboxes by phase and backend, as last observed",
    labelNames: ["phase", "backend"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const { phase, backend, count } of countByPhase()) this.set({ phase, backend }, count);
    },
  });
  const readySeconds = new Histogram({
    name: `${METRIC_PREFIX}_sandbox_ready_seconds`,
    help: "Time from a Sandbox's creation to its first Ready=True",
    labelNames: ["backend"] as const,
    buckets: [0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300],
    registers: [registry],
  });
  return { sandboxes, readySeconds };
}
