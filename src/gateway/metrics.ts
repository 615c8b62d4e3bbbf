// The gateway's metrics (Prometheus naming: sandbox_gateway_*): requests by
// verb and result (the refusal's code, or "ok"), their duration, streams in
// flight and bytes moved.
//
// Counted per call in plain numbers and handed to prom-client when it is
// scraped (its collect() hook): a labelled prom-client update hashes its
// labels, and five of them per call were a measurable share of the gateway's
// CPU per proxied request (bench/gateway/micro.ts). The label sets are
// bounded (verbs x results, both fixed sets of codes), so are the maps. Only
// the duration histogram is observed per call.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

export const GATEWAY_METRIC_PREFIX = "sandbox_gateway";

export class GatewayMetrics {
  private readonly live = new Map<string, number>();
  /** Requests finished since the last scrape, by "verb result". */
  private readonly finished = new Map<string, { verb: string; result: string; n: number }>();
  private bytesIn = 0;
  private bytesOut = 0;
  private readonly duration: Histogram<"verb">;

  constructor(registry: Registry) {
    const self = this;
    new Counter({
      name: `${GATEWAY_METRIC_PREFIX}_requests_total`,
      help: "Requests by verb and result (ok, or the refusal's code)",
      labelNames: ["verb", "result"] as const,
      registers: [registry],
      collect() {
        for (const f of self.finished.values()) {
          if (f.n) this.inc({ verb: f.verb, result: f.result }, f.n);
          f.n = 0;
        }
      },
    });
    this.duration = new Histogram({
      name: `${GATEWAY_METRIC_PREFIX}_request_duration_seconds`,
      help: "Time from a request's arrival to its end (streams: the whole stream)",
      labelNames: ["verb"] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30, 300],
      registers: [registry],
    });
    new Gauge({
      name: `${GATEWAY_METRIC_PREFIX}_in_flight`,
      help: "Requests and streams being served",
      labelNames: ["verb"] as const,
      registers: [registry],
      collect() {
        for (const [verb, n] of self.live) this.set({ verb }, n);
      },
    });
    new Counter({
      name: `${GATEWAY_METRIC_PREFIX}_bytes_total`,
      help: "Body bytes proxied, by direction (in: from clients, out: to clients)",
      labelNames: ["direction"] as const,
      registers: [registry],
      collect() {
        this.inc({ direction: "in" }, self.bytesIn);
        this.inc({ direction: "out" }, self.bytesOut);
        self.bytesIn = 0;
        self.bytesOut = 0;
      },
    });
  }

  started(verb: string): void {
    this.live.set(verb, (this.live.get(verb) ?? 0) + 1);
  }

  finishedCall(c: {
    verb: string;
    result: string;
    seconds: number;
    bytesIn: number;
    bytesOut: number;
  }): void {
    this.live.set(c.verb, (this.live.get(c.verb) ?? 1) - 1);
    const key = `${c.verb} ${c.result}`;
    const f = this.finished.get(key);
    if (f) f.n++;
    else this.finished.set(key, { verb: c.verb, result: c.result, n: 1 });
    this.duration.observe({ verb: c.verb }, c.seconds);
    this.bytesIn += c.bytesIn;
    this.bytesOut += c.bytesOut;
  }
}

export function gatewayMetrics(registry: Registry): GatewayMetrics {
  return new GatewayMetrics(registry);
}
