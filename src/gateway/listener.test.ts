import { describe, expect, it } from "vitest";
import { DEFAULT_LISTENER_LIMITS, Listener, sniff } from "./listener.js";
import { DEFAULT_LIMITS } from "./server.js";

describe("sniff: which protocol a cleartext connection speaks", () => {
  it.each([
    ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "h2"],
    ["PRI ", "h2"],
    ["GET / HTTP/1.1\r\n", "http/1.1"],
    ["POST /v1/exec HTTP/1.1\r\n", "http/1.1"],
    ["PUT /x HTTP/1.1\r\n", "http/1.1"],
    ["PATCH /x HTTP/1.1\r\n", "http/1.1"],
    ["PRX", "http/1.1"],
    // Too little to tell "PRI " from "PUT "/"POST"/"PATCH": wait for more.
    ["P", undefined],
    ["PR", undefined],
    ["PRI", undefined],
    ["", undefined],
  ])("%j -> %s", (first, want) => {
    expect(sniff(Buffer.from(first))).toBe(want);
  });
});

describe("the listener's limits on slow and idle clients", () => {
  // Over real sockets, with short values: src/gateway/slow-clients.test.ts.
  it("has deliberate defaults, applied to the HTTP/1 server and the listening socket", () => {
    expect(DEFAULT_LISTENER_LIMITS).toEqual({
      headersTimeoutMs: 15_000,
      keepAliveTimeoutMs: 5_000,
      maxHeaderBytes: 16_384,
      maxConnections: 4_096,
    });
    const l = new Listener({ onRequest: () => {}, onUpgrade: () => {} });
    expect({
      headersTimeout: l.h1.headersTimeout,
      requestTimeout: l.h1.requestTimeout,
      keepAliveTimeout: l.h1.keepAliveTimeout,
      maxHeaderSize: (l.h1 as unknown as { maxHeaderSize: number }).maxHeaderSize,
      maxConnections: l.server.maxConnections,
    }).toEqual({
      headersTimeout: 15_000,
      // Off: exec streams and uploads; bodies have their own timeouts (below).
      requestTimeout: 0,
      keepAliveTimeout: 5_000,
      maxHeaderSize: 16_384,
      maxConnections: 4_096,
    });
    // Checked every second, not Node's 30 s: a slowloris client goes at 15 s, not 45.
    expect(
      (l.h1 as unknown as { connectionsCheckingInterval: number }).connectionsCheckingInterval,
    ).toBe(1_000);
    void l.close();
  });

  it("request bodies: 60 s without a byte, 1 h in all", () => {
    expect([DEFAULT_LIMITS.bodyIdleTimeoutMs, DEFAULT_LIMITS.requestTimeoutMs]).toEqual([
      60_000, 3_600_000,
    ]);
  });
});
