// A tiny authoritative DNS server standing in for the internet's DNS: answers
// from a fixed zone and records every question it is asked, so tests can prove
// which names ever left the sandbox.
import { createSocket } from "node:dgram";
import { createServer } from "node:net";
import * as dnsPacket from "dns-packet";

export interface ZoneRecords {
  A?: string[];
  AAAA?: string[];
  TXT?: string[];
}
/** Names are lower case; "*.x.test" answers for any name below x.test. */
export type Zone = Record<string, ZoneRecords>;

export interface SeenQuery {
  name: string;
  type: string;
  transport: "udp" | "tcp";
}

export interface AuthoritativeDns {
  port: number;
  queries: SeenQuery[];
  close(): Promise<void>;
}

export async function startAuthoritativeDns(opts: {
  host: string;
  port: number;
  zone: Zone;
  onQuery?: (q: SeenQuery) => void;
}): Promise<AuthoritativeDns> {
  const queries: SeenQuery[] = [];
  const answer = (message: Buffer, transport: "udp" | "tcp"): Buffer | undefined => {
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return undefined;
    }
    const q = query.questions?.[0];
    if (!q) return undefined;
    const seen = { name: q.name.toLowerCase(), type: q.type, transport };
    queries.push(seen);
    opts.onQuery?.(seen);
    const records = lookup(opts.zone, seen.name);
    const data = records?.[q.type as keyof ZoneRecords] ?? [];
    return dnsPacket.encode({
      type: "response",
      id: query.id,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (records ? 0 : 3), // NXDOMAIN
      questions: [q],
      answers: data.map(
        (d) => ({ type: q.type, name: q.name, ttl: 5, data: d }) as dnsPacket.Answer,
      ),
    });
  };

  // UDP and TCP share one port: with port 0 the kernel picks it for UDP, and
  // another process may already hold it for TCP, so pick again in that case.
  for (let attempt = 1; ; attempt++) {
    const udp = createSocket(opts.host.includes(":") ? "udp6" : "udp4");
    try {
      return await serveOn(udp, opts.host, opts.port, queries, answer);
    } catch (err) {
      udp.close();
      const inUse = (err as NodeJS.ErrnoException).code === "EADDRINUSE";
      if (!inUse || opts.port !== 0 || attempt >= 10) throw err;
    }
  }
}

async function serveOn(
  udp: ReturnType<typeof createSocket>,
  host: string,
  wantedPort: number,
  queries: SeenQuery[],
  answer: (message: Buffer, transport: "udp" | "tcp") => Buffer | undefined,
): Promise<AuthoritativeDns> {
  udp.on("message", (msg, rinfo) => {
    const reply = answer(msg, "udp");
    if (reply) udp.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve, reject) => {
    udp.once("error", reject);
    udp.bind(wantedPort, host, () => resolve());
  });
  const port = udp.address().port;
  const tcp = createServer((socket) => {
    let pending: Buffer = Buffer.alloc(0);
    socket.on("error", () => socket.destroy());
    socket.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        const reply = answer(pending.subarray(2, 2 + pending.readUInt16BE(0)), "tcp");
        pending = pending.subarray(2 + pending.readUInt16BE(0));
        if (reply) {
          const len = Buffer.alloc(2);
          len.writeUInt16BE(reply.length);
          socket.write(Buffer.concat([len, reply]));
        }
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen(port, host, () => resolve());
  });
  return {
    port,
    queries,
    close: async () => {
      await new Promise<void>((r) => udp.close(() => r()));
      await new Promise<void>((r) => tcp.close(() => r()));
    },
  };
}

function lookup(zone: Zone, name: string): ZoneRecords | undefined {
  if (zone[name]) return zone[name];
  const labels = name.split(".");
  for (let i = 1; i < labels.length; i++) {
    const wildcard = zone[`*.${labels.slice(i).join(".")}`];
    if (wildcard) return wildcard;
  }
  return undefined;
}
