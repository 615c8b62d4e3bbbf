// Ask the upstream resolver one question, over UDP (retrying once, falling back
// to TCP when the answer is truncated) or over TCP. The response must carry
// the ID and question that were sent: anything else is dropped as spoofed.
import { randomInt } from "node:crypto";
import { createSocket } from "node:dgram";
import { connect } from "node:net";
import { inspectResponse, type ParsedQuery, upstreamQuery } from "./messages.js";
import { frame, readFrames } from "./tcp-framing.js";

export interface Upstream {
  host: string;
  port: number;
  timeoutMs: number;
}

/** Parse "host", "host:port" or "[v6]:port"; the port defaults to 53. */
export function parseUpstream(text: string, timeoutMs = 2000): Upstream {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? /^([^:]+)(?::(\d+))?$/.exec(text);
  if (!m) return { host: text, port: 53, timeoutMs }; // a bare IPv6 address
  return { host: m[1]!, port: m[2] ? Number(m[2]) : 53, timeoutMs };
}

/** The upstream's answer (raw bytes, upstream's ID), or throws. */
export async function askUpstream(
  upstream: Upstream,
  query: ParsedQuery,
  transport: "udp" | "tcp",
): Promise<Buffer> {
  if (transport === "udp") {
    for (let attempt = 0; attempt < 2; attempt++) {
      const answer = await askUdp(upstream, query).catch((err: Error) => {
        if (attempt === 1) throw err;
        return undefined;
      });
      if (answer === undefined) continue;
      if (!inspectResponse(answer)?.truncated) return answer;
      break; // truncated: the full answer needs TCP
    }
  }
  return askTcp(upstream, query);
}

function matches(answer: Buffer, id: number, query: ParsedQuery): boolean {
  const r = inspectResponse(answer);
  return (
    r !== undefined &&
    r.id === id &&
    r.questionName?.toLowerCase() === query.question.name.toLowerCase() &&
    r.questionType === query.question.type
  );
}

function askUdp(upstream: Upstream, query: ParsedQuery): Promise<Buffer> {
  const id = randomInt(0, 65536);
  const message = upstreamQuery(id, query, 1232);
  return new Promise((resolve, reject) => {
    const socket = createSocket(upstream.host.includes(":") ? "udp6" : "udp4");
    let finished = false;
    const done = (err?: Error, answer?: Buffer) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.close();
      if (err) reject(err);
      else resolve(answer!);
    };
    const timer = setTimeout(() => done(new Error("upstream DNS timeout")), upstream.timeoutMs);
    socket.on("error", (err) => done(err));
    socket.on("message", (answer, from) => {
      if (from.port === upstream.port && matches(answer, id, query)) done(undefined, answer);
    });
    socket.connect(upstream.port, upstream.host, () => socket.send(message));
  });
}

function askTcp(upstream: Upstream, query: ParsedQuery): Promise<Buffer> {
  const id = randomInt(0, 65536);
  const message = upstreamQuery(id, query, 65535);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: upstream.host, port: upstream.port });
    let finished = false;
    const done = (err?: Error, answer?: Buffer) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(answer!);
    };
    const timer = setTimeout(() => done(new Error("upstream DNS timeout")), upstream.timeoutMs);
    socket.on("error", (err) => done(err));
    socket.on("close", () => done(new Error("upstream DNS closed the connection")));
    socket.on("connect", () => socket.write(frame(message)));
    readFrames(socket, (answer) => {
      if (matches(answer, id, query)) done(undefined, answer);
    });
  });
}
