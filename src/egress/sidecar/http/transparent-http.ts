// The transparent listener for the workload's port-80 traffic (redirected by
// the lockdown). The destination is the Host header, never the address the
// workload connected to: the sidecar resolves the name and connects to the
// name's own address. Which name is read as a server would read it
// (request-target.ts): one Host, or the absolute-form authority.
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { Duplex } from "node:stream";
import type { DialContext } from "../connect/dial.js";
import { forwardRequest, forwardUpgrade } from "./forward.js";
import { refuseResponse, refuseSocket } from "./refusal.js";
import { transparentRequestTarget } from "./request-target.js";

/** `port`: the port the workload meant (80 when redirected from 80). */
export function transparentHttpServer(ctx: DialContext, port: number): Server {
  const server = createServer({ requireHostHeader: false });
  // Judged per request: on a kept-alive connection, each request names its own
  // destination (and gets its own upstream connection, see forward.ts).
  const targetOf = (req: IncomingMessage) => {
    const judged = transparentRequestTarget(req.rawHeaders, req.url, port);
    if (judged.ok) return { host: judged.host, port, path: judged.path };
    ctx.decisions.record({
      protocol: "http",
      target: req.headers.host ?? "<none>",
      port,
      decision: { verdict: "deny", rule: "default" },
      reason: judged.reason,
    });
    return judged;
  };
  server.on("request", (req, res) => {
    const target = targetOf(req);
    if ("ok" in target) {
      req.resume();
      return refuseResponse(res, target.status, target.reason);
    }
    void forwardRequest(ctx, "http", req, res, target);
  });
  server.on("upgrade", (req: IncomingMessage, client: Duplex, head: Buffer) => {
    const target = targetOf(req);
    if ("ok" in target) return refuseSocket(client, target.status, target.reason);
    void forwardUpgrade(ctx, "http", req, client, head, target);
  });
  server.on("connect", (_req: IncomingMessage, client: Duplex) => {
    refuseSocket(client, 405, "CONNECT is served by the explicit proxy, not on port 80");
  });
  return server;
}
