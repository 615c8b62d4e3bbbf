// Forward one HTTP request to a destination the sidecar dialed itself. Each
// request is judged and dialed on its own: piping a keep-alive connection would
// let a second request with another Host ride on the first one's connection
// (domain fronting on shared hosting or a CDN).
import { type IncomingMessage, request, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { type DialContext, dial } from "../connect/dial.js";
import { splice } from "../connect/splice.js";
import type { EgressProtocol } from "../decisions.js";
import { refuseResponse, refuseSocket } from "./refusal.js";

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus the proxy's own. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authorization",
  "proxy-authenticate",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

export interface ForwardTarget {
  host: string;
  port: number;
  /** Origin-form request target ("/path?query"). */
  path: string;
  /** Replace the Host header (explicit proxy: the absolute URI's authority wins). */
  hostHeader?: string;
}

export async function forwardRequest(
  ctx: DialContext,
  protocol: EgressProtocol,
  req: IncomingMessage,
  res: ServerResponse,
  target: ForwardTarget,
): Promise<void> {
  const dialed = await dial(ctx, protocol, target.host, target.port);
  if (!dialed.ok) {
    req.resume();
    return refuseResponse(res, dialed.status, dialed.message);
  }
  const headers = forwardedHeaders(req.rawHeaders, target.hostHeader, false);
  headers.push("connection", "close");
  const upstream = request({
    createConnection: () => dialed.socket,
    method: req.method,
    path: target.path,
    headers,
    setHost: false,
  });
  upstream.on("response", (up) => {
    res.writeHead(
      up.statusCode ?? 502,
      up.statusMessage,
      forwardedHeaders(up.rawHeaders, undefined, false),
    );
    up.pipe(res);
    up.on("error", () => res.destroy());
  });
  upstream.on("error", (err) => {
    refuseResponse(res, 502, `${target.host}:${target.port}: ${err.message}`);
  });
  res.on("close", () => {
    if (!res.writableFinished) upstream.destroy();
  });
  req.pipe(upstream);
}

/** An Upgrade request (WebSocket): send the request head ourselves, then join the sockets. */
export async function forwardUpgrade(
  ctx: DialContext,
  protocol: EgressProtocol,
  req: IncomingMessage,
  client: Duplex,
  head: Buffer,
  target: ForwardTarget,
): Promise<void> {
  client.on("error", () => client.destroy());
  const dialed = await dial(ctx, protocol, target.host, target.port);
  if (!dialed.ok) return refuseSocket(client, dialed.status, dialed.message);
  const headers = forwardedHeaders(req.rawHeaders, target.hostHeader, true);
  const lines = [`${req.method} ${target.path} HTTP/1.1`];
  for (let i = 0; i < headers.length; i += 2) lines.push(`${headers[i]}: ${headers[i + 1]}`);
  dialed.socket.write(`${lines.join("\r\n")}\r\n\r\n`);
  if (head.length > 0) dialed.socket.write(head);
  splice(client, dialed.socket);
}

/** Raw header pairs without hop-by-hop ones (kept for an upgrade, which needs them). */
function forwardedHeaders(raw: string[], host: string | undefined, upgrade: boolean): string[] {
  const named = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === "connection") {
      for (const token of raw[i + 1]!.split(",")) named.add(token.trim().toLowerCase());
    }
  }
  const out: string[] = [];
  if (host !== undefined) out.push("host", host);
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (host !== undefined && name === "host") continue;
    if (upgrade ? name.startsWith("proxy-") : HOP_BY_HOP.has(name) || named.has(name)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}
