// Metrics of warm pools and claims. Prometheus naming: sandbox_operator_<thing>_<unit>.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { METRIC_PREFIX } from "../observability/metrics.js";

export interface PoolGaugeRow {
  namespace: string;
  pool: string;
  target: number;
  total: number;
  ready: number;
  claimed: number;
}

export function poolMetrics(registry: Registry, pools: () => Iterable<PoolGaugeRow>) {
  const sandboxes = new Gauge({
    name: `${METRIC_PREFIX}_pool_sandboxes`,
    help: "Sandboxes of each warm pool: state=target (what it keeps), total (unclaimed), ready (unclaimed and ready), claimed (bound now)",
    labelNames: ["namespace", "pool", "state"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const p of pools()) {
        for (const state of ["target", "total", "ready", "claimed"] as const)
          this.set({ namespace: p.namespace, pool: p.pool, state }, p[state]);
      }
    },
  });
  const created = new Counter({
    name: `${METRIC_PREFIX}_pool_sandboxes_created_total`,
    help: "Sandboxes created by warm pools (refills, rolls, scale-ups)",
    registers: [registry],
  });
  const refillSeconds = new Histogram({
    name: `${METRIC_PREFIX}_pool_refill_seconds`,
    help: "Time from a pool creating a sandbox to the pool seeing it ready",
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120],
    registers: [registry],
  });
  const claims = new Counter({
    name: `${METRIC_PREFIX}_claims_total`,
    help: "Claims bound, by source: Warm (a ready pooled sandbox), Warming (a pooled one still starting), Cold (created for the claim)",
    labelNames: ["source"] as const,
    registers: [registry],
  });
  const claimReadySeconds = new Histogram({
    name: `${METRIC_PREFIX}_claim_ready_seconds`,
    help: "Time from the controller first seeing a claim to the claim's sandbox being ready with its policy, by source",
    labelNames: ["source"] as const,
    buckets: [0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers: [registry],
  });
  const bindConflicts = new Counter({
    name: `${METRIC_PREFIX}_claim_bind_conflicts_total`,
    help: "Bindings refused by the apiserver because another writer (another claim) changed the sandbox first",
    registers: [registry],
  });
  return { sandboxes, created, refillSeconds, claims, claimReadySeconds, bindConflicts };
}
export type PoolMetrics = ReturnType<typeof poolMetrics>;
