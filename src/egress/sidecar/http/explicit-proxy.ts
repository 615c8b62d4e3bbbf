// The explicit proxy the workload reaches through HTTP(S)_PROXY: CONNECT for
// any port (judged by host and port; the tunnel is opaque), and absolute-URI
// http:// requests (judged by the URI's host and port, forwarded one by one).
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { Duplex } from "node:stream";
import { PROXY_HIGH_WATER_MARK } from "../connect/buffering.js";
import { type DialContext, dial } from "../connect/dial.js";
import { splice } from "../connect/splice.js";
import { parseAuthority } from "./authority.js";
import { type ForwardTarget, forwardRequest, forwardUpgrade } from "./forward.js";
import { refuseResponse, refuseSocket } from "./refusal.js";

export function explicitProxyServer(ctx: DialContext): Server {
  const server = createServer({ requireHostHeader: false, highWaterMark: PROXY_HIGH_WATER_MARK });
  server.on("connect", (req: IncomingMessage, client: Duplex, head: Buffer) => {
    void tunnel(ctx, req, client, head);
  });
  server.on("request", (req, res) => {
    const target = absoluteTarget(req.url);
    if (!target) {
      req.resume();
      return refuseResponse(
        res,
        400,
        "this proxy takes CONNECT host:port or an absolute http:// URI",
      );
    }
    void forwardRequest(ctx, "proxy-http", req, res, target);
  });
  server.on("upgrade", (req: IncomingMessage, client: Duplex, head: Buffer) => {
    const target = absoluteTarget(req.url);
    if (!target)
      return refuseSocket(
        client,
        400,
        "an upgrade through this proxy needs an absolute http:// URI",
      );
    void forwardUpgrade(ctx, "proxy-http", req, client, head, target);
  });
  return server;
}

async function tunnel(ctx: DialContext, req: IncomingMessage, client: Duplex, head: Buffer) {
  client.on("error", () => client.destroy());
  const target = parseAuthority(req.url ?? "");
  if (!target) return refuseSocket(client, 400, "CONNECT needs host:port");
  const dialed = await dial(ctx, "proxy-connect", target.host, target.port);
  if (!dialed.ok) return refuseSocket(client, dialed.status, dialed.message);
  client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
  if (head.length > 0) dialed.socket.write(head);
  splice(client, dialed.socket);
}

function absoluteTarget(url: string | undefined): ForwardTarget | undefined {
  if (!url?.startsWith("http://")) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if (parsed.username || parsed.password) return undefined;
  const authority = parseAuthority(parsed.host, 80);
  if (!authority) return undefined;
  return { ...authority, path: `${parsed.pathname}${parsed.search}`, hostHeader: parsed.host };
}
