// Read the server name (SNI) from a TLS ClientHello without terminating TLS.
//
// Written here rather than taken from npm: the maintained TLS libraries
// (node:tls, forge) only parse a ClientHello as part of a full handshake, and
// the small SNI-only packages are unmaintained. The format is short and stable
// (RFC 8446 §4.1.2, RFC 6066 §3), and this parser handles what real clients
// send and what a hostile one might: a ClientHello split over several TLS
// records (allowed by the spec, used to dodge naive SNI filters), data arriving
// a byte at a time, and malformed or oversized input, without ever throwing.

export type ClientHelloResult =
  /** Not enough bytes yet; call again with more. */
  | { kind: "incomplete" }
  /** A complete ClientHello; serverName is absent when the client sent none. */
  | { kind: "client-hello"; serverName?: string }
  /** Not a TLS ClientHello we can judge; the connection must be refused. */
  | { kind: "invalid"; reason: string };

const RECORD_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXTENSION_SERVER_NAME = 0;
const NAME_TYPE_HOST = 0;
/** Far above any real ClientHello (even with post-quantum key shares). */
export const MAX_CLIENT_HELLO_BYTES = 64 * 1024;
/** Host names contain no other bytes; anything else is refused rather than guessed at. */
const HOST_NAME = /^[A-Za-z0-9_.-]{1,253}$/;

/** Parse what has arrived on a connection so far (everything from its first byte). */
export function parseClientHello(data: Buffer): ClientHelloResult {
  const handshake = reassembleHandshake(data);
  if (handshake.kind !== "ok") return handshake;
  const body = handshake.message;
  try {
    return parseHello(body);
  } catch {
    return { kind: "invalid", reason: "malformed ClientHello" };
  }
}

type Reassembly =
  | { kind: "ok"; message: Buffer }
  | Exclude<ClientHelloResult, { kind: "client-hello" }>;

/** Concatenate handshake records until the first handshake message is complete. */
function reassembleHandshake(data: Buffer): Reassembly {
  const fragments: Buffer[] = [];
  let have = 0;
  let offset = 0;
  while (offset + 5 <= data.length) {
    const type = data[offset]!;
    const major = data[offset + 1]!;
    const length = data.readUInt16BE(offset + 3);
    if (type !== RECORD_HANDSHAKE) return { kind: "invalid", reason: "not a TLS handshake record" };
    if (major !== 3) return { kind: "invalid", reason: "not TLS (record version)" };
    if (length === 0 || length > 16384 + 2048)
      return { kind: "invalid", reason: "bad record length" };
    const end = offset + 5 + length;
    fragments.push(data.subarray(offset + 5, Math.min(end, data.length)));
    have += Math.min(end, data.length) - (offset + 5);
    offset = end;
    if (have >= 4) {
      const joined = Buffer.concat(fragments);
      if (joined[0] !== HANDSHAKE_CLIENT_HELLO)
        return { kind: "invalid", reason: "not a ClientHello" };
      const needed = 4 + joined.readUIntBE(1, 3);
      if (needed > MAX_CLIENT_HELLO_BYTES)
        return { kind: "invalid", reason: "ClientHello too large" };
      if (joined.length >= needed) return { kind: "ok", message: joined.subarray(4, needed) };
    }
    if (end > data.length) break;
  }
  if (data.length > MAX_CLIENT_HELLO_BYTES + 1024) {
    return { kind: "invalid", reason: "ClientHello too large" };
  }
  if (data.length > 0 && data[0] !== RECORD_HANDSHAKE) {
    return { kind: "invalid", reason: "not a TLS handshake record" };
  }
  return { kind: "incomplete" };
}

/** A bounds-checked reader: any read past the end throws, caught by the caller. */
class Reader {
  constructor(
    private readonly buf: Buffer,
    private pos = 0,
  ) {}
  get remaining(): number {
    return this.buf.length - this.pos;
  }
  skip(n: number): void {
    this.take(n);
  }
  u8(): number {
    return this.take(1)[0]!;
  }
  u16(): number {
    return this.take(2).readUInt16BE(0);
  }
  take(n: number): Buffer {
    if (n < 0 || this.pos + n > this.buf.length) throw new RangeError("truncated");
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  rest(): Buffer {
    return this.take(this.remaining);
  }
  /** A sub-reader over the next length-prefixed vector. */
  vector(lengthBytes: 1 | 2): Reader {
    return new Reader(this.take(lengthBytes === 1 ? this.u8() : this.u16()));
  }
}

function parseHello(body: Buffer): ClientHelloResult {
  const r = new Reader(body);
  r.skip(2 + 32); // legacy_version, random
  r.vector(1); // legacy_session_id
  r.vector(2); // cipher_suites
  r.vector(1); // legacy_compression_methods
  if (r.remaining === 0) return { kind: "client-hello" }; // no extensions at all
  const extensions = r.vector(2);
  let serverName: string | undefined;
  const seen = new Set<number>();
  while (extensions.remaining > 0) {
    const type = extensions.u16();
    const data = extensions.vector(2);
    // A repeated extension is a protocol error; two SNI extensions could make
    // the proxy and the server disagree about the name.
    if (seen.has(type)) return { kind: "invalid", reason: `duplicate extension ${type}` };
    seen.add(type);
    if (type === EXTENSION_SERVER_NAME) {
      const name = parseServerName(data);
      if (name === undefined) return { kind: "invalid", reason: "malformed server_name" };
      serverName = name;
    }
  }
  return serverName === undefined ? { kind: "client-hello" } : { kind: "client-hello", serverName };
}

function parseServerName(data: Reader): string | undefined {
  const list = data.vector(2);
  if (data.remaining !== 0) return undefined;
  let host: string | undefined;
  while (list.remaining > 0) {
    const type = list.u8();
    const name = list.vector(2).rest();
    if (type !== NAME_TYPE_HOST) continue;
    if (host !== undefined) return undefined; // RFC 6066: at most one host_name
    const text = name.toString("latin1");
    if (!HOST_NAME.test(text)) return undefined;
    host = text;
  }
  return host;
}
