// DNS messages the proxy writes itself (refusals, errors) and the fields it
// reads from queries and responses. Parsing and encoding go through dns-packet;
// only the 16-bit ID is patched in place, to hand an upstream answer back
// byte-for-byte under the client's ID.
import * as dnsPacket from "dns-packet";

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;

export interface ParsedQuery {
  id: number;
  question: dnsPacket.Question;
  /** EDNS UDP payload size the client advertised, or 512 without EDNS. */
  udpSize: number;
  edns: boolean;
  recursionDesired: boolean;
}

/** A standard query with one question, or undefined (the proxy answers FORMERR or drops). */
export function parseQuery(message: Buffer): ParsedQuery | undefined {
  let packet: dnsPacket.DecodedPacket;
  try {
    packet = dnsPacket.decode(message);
  } catch {
    return undefined;
  }
  const opcode = ((packet.flags ?? 0) >> 11) & 0xf;
  const questions = packet.questions ?? [];
  if (packet.type !== "query" || opcode !== 0 || questions.length !== 1) return undefined;
  const opt = (packet.additionals ?? []).find((a) => a.type === "OPT") as
    | dnsPacket.OptAnswer
    | undefined;
  return {
    id: packet.id ?? 0,
    question: questions[0]!,
    udpSize: opt ? Math.max(512, opt.udpPayloadSize) : 512,
    edns: opt !== undefined,
    recursionDesired: packet.flag_rd,
  };
}

/** Read the ID of a message too broken to parse, to answer FORMERR under it. */
export function messageId(message: Buffer): number | undefined {
  return message.length >= 2 ? message.readUInt16BE(0) : undefined;
}

/** A response without answers: NXDOMAIN for refused names, SERVFAIL, or NODATA (NOERROR). */
export function emptyResponse(
  id: number,
  question: dnsPacket.Question | undefined,
  rcode: number,
): Buffer {
  return dnsPacket.encode({
    type: "response",
    id,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | rcode,
    questions: question ? [question] : [],
  });
}

/** The query the proxy sends upstream: only the judged question, a fresh ID, no client options. */
export function upstreamQuery(id: number, q: ParsedQuery, udpSize: number): Buffer {
  return dnsPacket.encode({
    type: "query",
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name: q.question.name, type: q.question.type, class: q.question.class }],
    additionals: q.edns ? [ednsOpt(udpSize)] : [],
  });
}

export interface UpstreamAnswer {
  id: number;
  truncated: boolean;
  questionName: string | undefined;
  questionType: string | undefined;
}

export function inspectResponse(message: Buffer): UpstreamAnswer | undefined {
  try {
    const p = dnsPacket.decode(message);
    if (p.type !== "response") return undefined;
    return {
      id: p.id ?? 0,
      truncated: p.flag_tc,
      questionName: p.questions?.[0]?.name,
      questionType: p.questions?.[0]?.type,
    };
  } catch {
    return undefined;
  }
}

/** Copy of `message` carrying `id`. */
export function withId(message: Buffer, id: number): Buffer {
  const out = Buffer.from(message);
  out.writeUInt16BE(id, 0);
  return out;
}

/** A response the client's UDP buffer cannot hold: header and question with TC set, so it retries over TCP. */
export function truncatedResponse(id: number, question: dnsPacket.Question): Buffer {
  return dnsPacket.encode({
    type: "response",
    id,
    flags:
      dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | dnsPacket.TRUNCATED_RESPONSE,
    questions: [question],
  });
}

function ednsOpt(udpPayloadSize: number): dnsPacket.OptAnswer {
  return {
    type: "OPT",
    name: ".",
    udpPayloadSize,
    extendedRcode: 0,
    ednsVersion: 0,
    flags: 0,
    flag_do: false,
    options: [],
  };
}
