// The upstream leg of port routing: undici's dispatcher, one keep-alive pool
// per sandbox port, instead of node:http's ClientRequest. In
// bench/gateway/micro.ts the bare proxy with undici on this leg cost ~25%
// less CPU per request than with http.request at concurrency 100, and the
// gateway followed (docs/gateway.md, "Benchmark").
//
// Streaming both ways, in bounded memory: the request body is handed to undici
// as a stream (read with back-pressure), and each response chunk is written to
// the client as it comes, the upstream paused while the client's socket is
// full. A client that goes away aborts the upstream request.
import type http from "node:http";
import type { Readable } from "node:stream";
import { Agent, type Dispatcher } from "undici";
import { GatewayError } from "./errors.js";

/** Connections kept per sandbox port (the per-sandbox concurrency cap is the tighter bound by default). */
export const UPSTREAM_CONNECTIONS_PER_ORIGIN = 1024;
/** Sandbox ports with a pool at once; an origin's pool goes when its last connection closes. */
export const UPSTREAM_MAX_ORIGINS = 10_000;
/**
 * How long a sandbox port may take to answer with its headers before the
 * client gets 504. Generous (long-polling endpoints answer late), but bounded:
 * a workload that never answers does not hold a gateway request forever.
 * Bodies have no idle timeout (server-sent events may be quiet for minutes).
 */
export const UPSTREAM_HEADERS_TIMEOUT_MS = 300_000;
/** undici closes a pooled connection idle this long (the workload's server may close first). */
export const UPSTREAM_KEEPALIVE_MS = 4_000;

export function upstreamAgent(o: { headersTimeoutMs?: number } = {}): Agent {
  return new Agent({
    connections: UPSTREAM_CONNECTIONS_PER_ORIGIN,
    maxOrigins: UPSTREAM_MAX_ORIGINS,
    pipelining: 1,
    keepAliveTimeout: UPSTREAM_KEEPALIVE_MS,
    headersTimeout: o.headersTimeoutMs ?? UPSTREAM_HEADERS_TIMEOUT_MS,
    bodyTimeout: 0,
  });
}

/** "http://host:port", IPv6 hosts bracketed. */
export function originOf(host: string, port: number): string {
  return host.includes(":") ? `http://[${host}]:${port}` : `http://${host}:${port}`;
}

/** What a failed upstream request answers the client (pure; table-tested in upstream.test.ts). */
export function upstreamRefusal(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const code = (err as { code?: string }).code;
  const message = (err as Error).message ?? String(err);
  if (code === "UND_ERR_HEADERS_TIMEOUT")
    return new GatewayError(504, "UPSTREAM_TIMEOUT", "the sandbox did not answer in time");
  if (code === "UND_ERR_MAX_ORIGINS_REACHED")
    return new GatewayError(503, "UPSTREAM_BUSY", "too many sandbox ports in use", 1);
  return new GatewayError(502, "UPSTREAM_ERROR", `the sandbox did not answer: ${message}`);
}

/** Response headers a proxy must not pass on (RFC 9110 §7.6.1; HTTP/2 forbids them too). */
const RESPONSE_HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

export function responseHeaders(
  h: Record<string, string | string[] | undefined>,
): http.OutgoingHttpHeaders {
  let drop: Set<string> | undefined;
  const conn = h.connection;
  // Headers the upstream named in Connection are hop-by-hop too.
  if (typeof conn === "string" && conn !== "keep-alive" && conn !== "close")
    drop = new Set(
      conn
        .toLowerCase()
        .split(",")
        .map((s) => s.trim()),
    );
  const out: http.OutgoingHttpHeaders = {};
  for (const k in h) {
    const v = h[k];
    if (v !== undefined && !RESPONSE_HOP_BY_HOP.has(k) && !drop?.has(k)) out[k] = v;
  }
  return out;
}

export interface ProxyHooks {
  /** Response body bytes on their way to the client. */
  onBytesOut(n: number): void;
  /** The upstream refused, failed or timed out before the response began: answer the client. */
  refuse(err: GatewayError): void;
}

/**
 * Sends one request upstream and the answer back to res. Nothing to await:
 * failures go to hooks.refuse before the response starts, and destroy res
 * after; the caller learns the end from res's close (a promise per request
 * here was one more allocation nobody waited on).
 */
// No named closure is made per request here or in the hooks (an arrow bound
// to a name): the bundle keeps function names (esbuild keepNames), which
// costs a defineProperty per such closure, ~1 µs per proxied request each.
export function proxy(
  dispatcher: Dispatcher,
  res: http.ServerResponse,
  to: {
    origin: string;
    method: string;
    path: string;
    headers: http.OutgoingHttpHeaders;
    body: Readable | null;
  },
  hooks: ProxyHooks,
): void {
  let controller: Dispatcher.DispatchController | undefined;
  let clientGone = false;
  let paused = false;
  // The client went away: so does the upstream request.
  res.on("close", () => {
    // writableEnded: HTTP/2's compatibility response has no writableFinished.
    if (res.writableEnded) return;
    clientGone = true;
    controller?.abort(new Error("the client went away"));
  });
  const handler: Dispatcher.DispatchHandler = {
    onRequestStart(c) {
      controller = c;
      if (clientGone) c.abort(new Error("the client went away"));
    },
    onResponseStart(_c, statusCode, headers) {
      if (statusCode < 200) return; // 1xx: the final answer follows
      res.writeHead(statusCode, responseHeaders(headers));
      // Streams (no length) reach the client as they come; a response of
      // known length goes out with its first bytes, in one write.
      if (headers["content-length"] === undefined) res.flushHeaders();
    },
    onResponseData(c, chunk) {
      hooks.onBytesOut(chunk.length);
      if (!res.write(chunk) && !paused) {
        paused = true;
        c.pause();
        res.once("drain", () => {
          paused = false;
          controller?.resume();
        });
      }
    },
    onResponseEnd() {
      res.end();
    },
    onResponseError(_c, err) {
      if (!clientGone) {
        if (res.headersSent) res.destroy();
        else hooks.refuse(upstreamRefusal(err));
      }
    },
  };
  dispatcher.dispatch(
    {
      origin: to.origin,
      method: to.method,
      path: to.path,
      headers: to.headers as Record<string, string | string[]>,
      body: to.body,
    },
    handler,
  );
}
