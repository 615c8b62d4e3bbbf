// The transparent listener for the workload's port-443 traffic (redirected by
// the lockdown). It reads the ClientHello, judges the SNI name, connects to the
// name's own address and replays the bytes; TLS stays end to end between the
// workload and the server. A ClientHello without SNI (a client dialing a bare
// IP) is refused: there is no name to judge, and the original address is not
// used. What TLS hides (the Host inside the tunnel) cannot be judged here.
import { createServer, type Server, type Socket } from "node:net";
import { PROXY_HIGH_WATER_MARK } from "../connect/buffering.js";
import type { DialContext } from "../connect/dial.js";
import { dial } from "../connect/dial.js";
import { splice } from "../connect/splice.js";
import { parseClientHello } from "./client-hello.js";

const CLIENT_HELLO_TIMEOUT_MS = 10_000;

/** `port`: the port the workload meant (443 when redirected from 443). */
export function transparentTlsServer(ctx: DialContext, port: number): Server {
  const options = { allowHalfOpen: true, noDelay: true, highWaterMark: PROXY_HIGH_WATER_MARK };
  return createServer(options, (client) => {
    void handle(ctx, port, client);
  });
}

async function handle(ctx: DialContext, port: number, client: Socket): Promise<void> {
  client.on("error", () => client.destroy());
  const hello = await readClientHello(client);
  const refuse = (reason: string) => {
    ctx.decisions.record({
      protocol: "tls",
      target: "<none>",
      port,
      decision: { verdict: "deny", rule: "default" },
      reason,
    });
    client.destroy();
  };
  if (hello.kind === "error") return refuse(hello.reason);
  if (hello.serverName === undefined) return refuse("ClientHello without SNI");
  const dialed = await dial(ctx, "tls", hello.serverName, port);
  if (!dialed.ok || client.destroyed) {
    client.destroy();
    if (dialed.ok) dialed.socket.destroy();
    return;
  }
  dialed.socket.write(hello.bytes);
  splice(client, dialed.socket);
  client.resume();
}

type Hello = { kind: "ok"; serverName?: string; bytes: Buffer } | { kind: "error"; reason: string };

/** Buffer the connection's first bytes until the ClientHello is complete; leaves the socket paused. */
function readClientHello(client: Socket): Promise<Hello> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const finish = (result: Hello) => {
      clearTimeout(timer);
      client.pause();
      client.removeListener("data", onData);
      client.removeListener("end", onEnd);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      const bytes = Buffer.concat(chunks);
      const parsed = parseClientHello(bytes);
      if (parsed.kind === "incomplete") return;
      if (parsed.kind === "invalid") return finish({ kind: "error", reason: parsed.reason });
      finish({
        kind: "ok",
        bytes,
        ...(parsed.serverName ? { serverName: parsed.serverName } : {}),
      });
    };
    const onEnd = () =>
      finish({ kind: "error", reason: "connection closed before the ClientHello" });
    const timer = setTimeout(
      () => finish({ kind: "error", reason: "no ClientHello in time" }),
      CLIENT_HELLO_TIMEOUT_MS,
    );
    client.on("data", onData);
    client.on("end", onEnd);
  });
}
