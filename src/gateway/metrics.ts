// The gateway's metrics (Prometheus naming: sandbox_gateway_*): requests by
// verb and result (the refusal code, or "ok"), their duration, streams in
// flight and bytes moved.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

export const GATEWAY_METRIC_PREFIX = "sandbox_gateway";

export function gatewayMetrics(registry: Registry) {
  return {
    requests: new Counter({
      name: `${GATEWAY_METRIC_PREFIX}_requests_total`,
      help: "Requests by verb and result (ok, or the refusal's code)",
      labelNames: ["verb", "result"] as const,
      registers: [registry],
    }),
    duration: new Histogram({
      name: `${GATEWAY_METRIC_PREFIX}_request_duration_seconds`,
      help: "Time from a request's arrival to its end (streams: the whole stream)",
      labelNames: ["verb"] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30, 300],
      registers: [registry],
    }),
    inFlight: new Gauge({
      name: `${GATEWAY_METRIC_PREFIX}_in_flight`,
      help: "Requests and streams being served",
      labelNames: ["verb"] as const,
      registers: [registry],
    }),
    bytes: new Counter({
      name: `${GATEWAY_METRIC_PREFIX}_bytes_total`,
      help: "Body bytes proxied, by direction (in: from clients, out: to clients)",
      labelNames: ["direction"] as const,
      registers: [registry],
    }),
  };
}
export type GatewayMetrics = ReturnType<typeof gatewayMetrics>;
