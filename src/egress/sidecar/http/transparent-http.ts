// The transparent listener for the workload's port-80 traffic (redirected by
// the lockdown). The destination is the Host header, never the address the
// workload connected to: the sidecar resolves the name and connects to the
// name's own address.
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { Duplex } from "node:stream";
import type { DialContext } from "../connect/dial.js";
import { parseAuthority } from "./authority.js";
import { forwardRequest, forwardUpgrade } from "./forward.js";
import { refuseResponse, refuseSocket } from "./refusal.js";

/** `port`: the port the workload meant (80 when redirected from 80). */
export function transparentHttpServer(ctx: DialContext, port: number): Server {
  const server = createServer({ requireHostHeader: false });
  const targetOf = (req: IncomingMessage) => {
    // The Host header's own port is ignored: the redirect says which port it was.
    const authority = parseAuthority(req.headers.host ?? "", port);
    return authority && { host: authority.host, port, path: req.url ?? "/" };
  };
  const refuseMissingHost = (req: IncomingMessage) => {
    ctx.decisions.record({
      protocol: "http",
      target: req.headers.host ?? "<none>",
      port,
      decision: { verdict: "deny", rule: "default" },
      reason: "missing or malformed Host header",
    });
  };
  server.on("request", (req, res) => {
    const target = targetOf(req);
    if (!target) {
      refuseMissingHost(req);
      req.resume();
      return refuseResponse(res, 400, "a Host header naming the destination is required");
    }
    void forwardRequest(ctx, "http", req, res, target);
  });
  server.on("upgrade", (req: IncomingMessage, client: Duplex, head: Buffer) => {
    const target = targetOf(req);
    if (!target) {
      refuseMissingHost(req);
      return refuseSocket(client, 400, "a Host header naming the destination is required");
    }
    void forwardUpgrade(ctx, "http", req, client, head, target);
  });
  server.on("connect", (_req: IncomingMessage, client: Duplex) => {
    refuseSocket(client, 405, "CONNECT is served by the explicit proxy, not on port 80");
  });
  return server;
}
