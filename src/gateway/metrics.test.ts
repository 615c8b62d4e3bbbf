import { Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { DURATION_BUCKETS, gatewayMetrics } from "./metrics.js";

describe("gateway metrics: counted per call, handed to prom-client at scrape", () => {
  it("counts requests by verb and result, streams in flight and bytes, once each across scrapes", async () => {
    const registry = new Registry();
    const m = gatewayMetrics(registry);
    m.started("connect");
    m.started("connect");
    m.started("exec");
    m.finishedCall({ verb: "connect", result: "ok", seconds: 0.002, bytesIn: 10, bytesOut: 30 });
    m.finishedCall({ verb: "exec", result: "RBAC_DENIED", seconds: 0.5, bytesIn: 0, bytesOut: 5 });
    const first = await registry.metrics();
    expect(first).toContain('sandbox_gateway_requests_total{verb="connect",result="ok"} 1');
    expect(first).toContain('sandbox_gateway_requests_total{verb="exec",result="RBAC_DENIED"} 1');
    expect(first).toContain('sandbox_gateway_in_flight{verb="connect"} 1');
    expect(first).toContain('sandbox_gateway_in_flight{verb="exec"} 0');
    expect(first).toContain('sandbox_gateway_bytes_total{direction="in"} 10');
    expect(first).toContain('sandbox_gateway_bytes_total{direction="out"} 35');
    expect(first).toContain(
      'sandbox_gateway_request_duration_seconds_bucket{le="0.0025",verb="connect"} 1',
    );
    // A second scrape with nothing new reports the same totals, not twice them.
    expect(await registry.metrics()).toBe(first);
    m.finishedCall({ verb: "connect", result: "ok", seconds: 0.01, bytesIn: 1, bytesOut: 1 });
    const third = await registry.metrics();
    expect(third).toContain('sandbox_gateway_requests_total{verb="connect",result="ok"} 2');
    expect(third).toContain('sandbox_gateway_in_flight{verb="connect"} 0');
    expect(third).toContain('sandbox_gateway_bytes_total{direction="in"} 11');
  });

  it("writes the duration histogram exactly as prom-client's Histogram would", async () => {
    const ours = new Registry();
    const m = gatewayMetrics(ours);
    const theirs = new Registry();
    const h = new Histogram({
      name: "sandbox_gateway_request_duration_seconds",
      help: "Time from a request's arrival to its end (streams: the whole stream)",
      labelNames: ["verb"] as const,
      buckets: DURATION_BUCKETS,
      registers: [theirs],
    });
    for (const [verb, seconds] of [
      ["connect", 0.0004],
      ["connect", 0.001],
      ["connect", 0.0011],
      ["exec", 2],
      ["exec", 301],
      ["files", 0.05],
    ] as const) {
      m.started(verb);
      m.finishedCall({ verb, result: "ok", seconds, bytesIn: 0, bytesOut: 0 });
      h.observe({ verb }, seconds);
    }
    const section = (text: string) =>
      text
        .split("\n\n")
        .find((s) => s.includes("# TYPE sandbox_gateway_request_duration_seconds"))
        ?.trim();
    expect(section(await ours.metrics())).toBe(section(await theirs.metrics()));
  });
});
