// The DNS proxy: every query from the workload lands here (the lockdown
// redirects UDP and TCP port 53). A name the policy allows on some port is
// forwarded upstream as a fresh query carrying only its question; any other
// name gets NXDOMAIN and never leaves the sandbox, so DNS cannot carry data out
// through names the policy does not allow.
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { createServer, type Server } from "node:net";
import { type CompiledPolicy, decideNameAnyPort, normalizeName } from "../../policy/index.js";
import type { DecisionRecorder } from "../decisions.js";
import {
  emptyResponse,
  messageId,
  parseQuery,
  RCODE,
  truncatedResponse,
  withId,
} from "./messages.js";
import { frame, readFrames } from "./tcp-framing.js";
import { askUpstream, type Upstream } from "./upstream.js";

export interface DnsProxyOptions {
  host: string;
  port: number;
  upstream: Upstream;
  policy(): CompiledPolicy;
  decisions: DecisionRecorder;
  /**
   * Forward AAAA queries. Off by default: the lockdown closes IPv6, and an
   * empty AAAA answer spares clients a failed IPv6 attempt before IPv4.
   */
  forwardAAAA?: boolean;
}

export interface DnsProxy {
  port: number;
  close(): Promise<void>;
}

const TCP_IDLE_MS = 10_000;

export async function startDnsProxy(opts: DnsProxyOptions): Promise<DnsProxy> {
  const answer = (message: Buffer, transport: "udp" | "tcp") => respond(opts, message, transport);
  // UDP and TCP must share one port. With port 0 the port UDP got may be taken
  // for TCP, so a few fresh attempts are made before giving up.
  for (let attempt = 1; ; attempt++) {
    const udp = await bindUdp(opts.host, opts.port, answer);
    const port = udp.address().port;
    try {
      const tcp = await listenTcp(opts.host, port, answer);
      return {
        port,
        close: async () => {
          await Promise.all([
            new Promise<void>((r) => udp.close(() => r())),
            new Promise<void>((r) => tcp.close(() => r())),
          ]);
        },
      };
    } catch (err) {
      udp.close();
      const inUse = (err as NodeJS.ErrnoException).code === "EADDRINUSE";
      if (!inUse || opts.port !== 0 || attempt >= 10) throw err;
    }
  }
}

type Answer = (message: Buffer, transport: "udp" | "tcp") => Promise<Buffer | undefined>;

async function bindUdp(host: string, port: number, answer: Answer): Promise<UdpSocket> {
  const udp: UdpSocket = createSocket({ type: host.includes(":") ? "udp6" : "udp4" });
  udp.on("message", (message, client) => {
    void answer(message, "udp").then((reply) => {
      if (reply) udp.send(reply, client.port, client.address);
    });
  });
  await new Promise<void>((resolve, reject) => {
    udp.once("error", reject);
    udp.bind(port, host, () => resolve());
  });
  return udp;
}

async function listenTcp(host: string, port: number, answer: Answer): Promise<Server> {
  const tcp: Server = createServer((socket) => {
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    socket.on("error", () => socket.destroy());
    readFrames(socket, (message) => {
      void answer(message, "tcp").then((reply) => {
        if (reply && socket.writable) socket.write(frame(reply));
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen(port, host, () => resolve());
  });
  return tcp;
}

async function respond(
  opts: DnsProxyOptions,
  message: Buffer,
  transport: "udp" | "tcp",
): Promise<Buffer | undefined> {
  const query = parseQuery(message);
  if (!query) {
    const id = messageId(message);
    return id === undefined ? undefined : emptyResponse(id, undefined, RCODE.FORMERR);
  }
  const name = normalizeName(query.question.name);
  const decision = decideNameAnyPort(opts.policy(), name);
  opts.decisions.record({
    protocol: "dns",
    target: name,
    port: 53,
    decision,
    ...(query.question.type !== "A" ? { reason: `query type ${query.question.type}` } : {}),
  });
  if (decision.verdict === "deny") return emptyResponse(query.id, query.question, RCODE.NXDOMAIN);
  if (query.question.type === "AAAA" && !opts.forwardAAAA) {
    return emptyResponse(query.id, query.question, RCODE.NOERROR);
  }
  try {
    const reply = withId(await askUpstream(opts.upstream, query, transport), query.id);
    if (transport === "udp" && reply.length > query.udpSize) {
      return truncatedResponse(query.id, query.question);
    }
    return reply;
  } catch {
    return emptyResponse(query.id, query.question, RCODE.SERVFAIL);
  }
}
