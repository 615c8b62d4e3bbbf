// The gateway's metrics (Prometheus naming: sandbox_gateway_*): requests by
// verb and result (the refusal's code, or "ok"), their duration, streams in
// flight and bytes moved.
//
// Counted per call in plain numbers and handed to prom-client when it is
// scraped (its collect() hook): a labelled prom-client update hashes its
// labels, and five of them per call were a measurable share of the gateway's
// CPU per proxied request (bench/gateway/micro.ts). The label sets are
// bounded (verbs x results, both fixed sets of codes), so are the maps. The
// duration histogram is this file's own (DurationHistogram): prom-client's
// observe() validated and hashed its labels on every call.
import { Counter, Gauge, type Registry } from "prom-client";

export const GATEWAY_METRIC_PREFIX = "sandbox_gateway";

/** Upper bounds of the duration buckets, seconds. */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30, 300];

/**
 * A histogram by verb in plain arrays, registered with prom-client as a
 * metric of its own (the registry asks it for its values when scraped), in
 * the exposition format prom-client's Histogram writes.
 */
interface Sample {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

class DurationHistogram {
  readonly name = `${GATEWAY_METRIC_PREFIX}_request_duration_seconds`;
  readonly help = "Time from a request's arrival to its end (streams: the whole stream)";
  readonly type = "histogram";
  readonly aggregator = "sum";
  private byVerb = new Map<string, { buckets: number[]; sum: number; count: number }>();

  observe(verb: string, seconds: number): void {
    let h = this.byVerb.get(verb);
    if (!h) {
      h = { buckets: new Array<number>(DURATION_BUCKETS.length).fill(0), sum: 0, count: 0 };
      this.byVerb.set(verb, h);
    }
    const i = DURATION_BUCKETS.findIndex((b) => seconds <= b);
    if (i >= 0) h.buckets[i]!++;
    h.sum += seconds;
    h.count++;
  }

  get(): Promise<{
    name: string;
    help: string;
    type: string;
    values: Sample[];
    aggregator: string;
  }> {
    const values: Sample[] = [];
    for (const [verb, h] of this.byVerb) {
      let acc = 0;
      DURATION_BUCKETS.forEach((le, i) => {
        acc += h.buckets[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { le, verb }, value: acc });
      });
      values.push({
        metricName: `${this.name}_bucket`,
        labels: { le: "+Inf", verb },
        value: h.count,
      });
      values.push({ metricName: `${this.name}_sum`, labels: { verb }, value: h.sum });
      values.push({ metricName: `${this.name}_count`, labels: { verb }, value: h.count });
    }
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    });
  }

  reset(): void {
    this.byVerb = new Map();
  }
}

export class GatewayMetrics {
  private readonly live = new Map<string, number>();
  /** Requests finished since the last scrape, by "verb result". */
  private readonly finished = new Map<string, { verb: string; result: string; n: number }>();
  private bytesIn = 0;
  private bytesOut = 0;
  private readonly duration = new DurationHistogram();

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
    registry.registerMetric(this.duration as never);
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
    this.duration.observe(c.verb, c.seconds);
    this.bytesIn += c.bytesIn;
    this.bytesOut += c.bytesOut;
  }
}

export function gatewayMetrics(registry: Registry): GatewayMetrics {
  return new GatewayMetrics(registry);
}
