// The gateway's listening socket: HTTP/1.1 and HTTP/2 on one port, handed to
// the same request and upgrade handlers, so both protocols pass the same
// routing, authentication, authorization and limits.
//
//   TLS:       ALPN chooses ("h2", else "http/1.1").
//   cleartext: HTTP/2 with prior knowledge (h2c: the client opens with the
//              connection preface "PRI * HTTP/2.0"), else HTTP/1.1. The
//              HTTP/1.1 `Upgrade: h2c` dance is not offered (clients that
//              speak h2c use prior knowledge; browsers never use h2c).
//
// One HTTP/1.1 server and one HTTP/2 server receive the connections, so their
// limits (header size and time, streams per connection) are the same in both
// modes. HTTP/2's compatibility API gives requests and responses the shape of
// HTTP/1's, which is all the handlers use (method, url, headers, the socket's
// address, streaming bodies, writeHead/flushHeaders/end, `close`).
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { Duplex } from "node:stream";
import tls from "node:tls";

export type RequestHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;
export type UpgradeHandler = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;

/**
 * How the listener treats slow and idle clients; every value deliberate, none
 * left to Node's defaults (which differ by version and, for a server that is
 * handed its connections rather than listening itself, are not enforced).
 */
export interface ListenerLimits {
  /**
   * A connection must send its first bytes, finish its TLS handshake, and
   * send each request's complete headers within this long (slowloris). Node
   * enforces the HTTP/1 part from a timer that only runs on a server that
   * listens, and checks every 30 s by default: both are set here. HTTP/2
   * header blocks are timed by the listener itself (H2HeaderWatch).
   */
  headersTimeoutMs: number;
  /** An idle keep-alive connection (between requests) is closed after this long. */
  keepAliveTimeoutMs: number;
  /** Largest request head (request line and headers), HTTP/1 and HTTP/2 alike. */
  maxHeaderBytes: number;
  /**
   * Connections at once; past it a new connection is closed at once. Bounds
   * what slow clients can make the gateway hold (socket, parser and up to
   * maxHeaderBytes each) whatever their number.
   */
  maxConnections: number;
}

export const DEFAULT_LISTENER_LIMITS: ListenerLimits = {
  headersTimeoutMs: 15_000,
  keepAliveTimeoutMs: 5_000,
  maxHeaderBytes: 16_384,
  maxConnections: 4_096,
};
/**
 * Streams in flight per HTTP/2 connection. The per-credential and
 * per-sandbox caps still bound what one client holds; this bounds what one
 * connection makes the gateway track.
 */
export const H2_MAX_CONCURRENT_STREAMS = 128;

/** How often header deadlines are checked (HTTP/1 by Node, HTTP/2 here): the bound is met within this. */
export function headersCheckIntervalMs(headersTimeoutMs: number): number {
  return Math.min(1_000, Math.ceil(headersTimeoutMs / 4));
}

/**
 * A header block in progress on one HTTP/2 session. Node hands a stream to
 * JavaScript only once its headers are complete, and has no event for a
 * block that begins; nghttp2's "last processed stream ID" (session.state
 * .lastProcStreamID) moves as soon as a HEADERS frame's header is read. So a
 * block is in progress while that ID is above the highest stream delivered.
 * The same is true of a stream nghttp2 reset for malformed headers (it never
 * reaches JavaScript): to tell the two apart, the session is sent a PING when
 * a block is first seen. Frames may not interleave with a header block, so
 * the peer's answer can only come once the block is over.
 */
interface H2HeaderWatch {
  /** Highest stream ID delivered (or known over). */
  seen: number;
  /** The stream whose header block is in progress (0: none), since when. */
  pending: number;
  since: number;
}

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
/** Enough of the preface to tell it from any HTTP/1 method ("PRI " is none). */
const SNIFF_BYTES = 4;

/** Which protocol a cleartext connection speaks, from its first bytes; undefined: need more. */
export function sniff(first: Buffer): "h2" | "http/1.1" | undefined {
  const n = Math.min(first.length, SNIFF_BYTES);
  if (!first.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) return "http/1.1";
  return n < SNIFF_BYTES ? undefined : "h2";
}

export class Listener {
  /** The listening server (net.Server, or tls.Server with a certificate). */
  readonly server: net.Server;
  readonly limits: ListenerLimits;
  /** Exposed for tests of the limits' wiring. */
  readonly h1: http.Server;
  private readonly h2: http2.Http2Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly h2Sessions = new Map<http2.ServerHttp2Session, H2HeaderWatch>();
  private readonly h2Check: NodeJS.Timeout;

  constructor(o: {
    tls?: { cert: Buffer; key: Buffer };
    limits?: Partial<ListenerLimits>;
    onRequest: RequestHandler;
    onUpgrade: UpgradeHandler;
  }) {
    const limits = { ...DEFAULT_LISTENER_LIMITS, ...o.limits };
    this.limits = limits;
    this.h1 = http.createServer(
      {
        noDelay: true,
        headersTimeout: limits.headersTimeoutMs,
        // Node's whole-request timeout would cut exec streams (their body is
        // the process's stdin, open as long as it runs) and large uploads:
        // off here; request bodies have their own idle and total timeouts
        // (GatewayLimits.bodyIdleTimeoutMs, requestTimeoutMs in server.ts).
        requestTimeout: 0,
        keepAliveTimeout: limits.keepAliveTimeoutMs,
        maxHeaderSize: limits.maxHeaderBytes,
        // How often the headers timeout is checked: Node's default (30 s)
        // would let a slowloris client live up to 45 s instead of 15.
        connectionsCheckingInterval: headersCheckIntervalMs(limits.headersTimeoutMs),
      },
      o.onRequest,
    );
    // This server never listens (the connections are handed to it), and Node
    // starts the timer that enforces headersTimeout only on "listening":
    // without this, a client trickling its headers is never cut off
    // (src/gateway/slow-clients.test.ts).
    this.h1.emit("listening");
    this.h1.on("upgrade", o.onUpgrade);
    this.h2 = http2.createServer({
      settings: {
        maxConcurrentStreams: H2_MAX_CONCURRENT_STREAMS,
        maxHeaderListSize: limits.maxHeaderBytes,
        enablePush: false,
      },
      maxHeaderListPairs: 128,
      // Per-session buffered memory (MB) before new streams are refused.
      maxSessionMemory: 16,
    });
    // The compatibility API's request and response have the HTTP/1 shape the handler uses.
    this.h2.on("request", o.onRequest as unknown as Parameters<http2.Http2Server["on"]>[1]);
    // A session idle this long (no streams, no frames) is closed, as HTTP/1's keep-alive would be.
    this.h2.setTimeout(120_000, (s?: http2.Http2Session) => s?.close());
    this.h2.on("sessionError", () => {});
    // HTTP/2's headers timeout: Node has none for a stream whose header
    // block never ends (the session's idle timeout above only applies once
    // nothing at all arrives, so a trickled block held a session for 120 s).
    this.h2.on("session", (s: http2.ServerHttp2Session) => {
      const w: H2HeaderWatch = { seen: 0, pending: 0, since: 0 };
      this.h2Sessions.set(s, w);
      s.on("stream", (stream: http2.ServerHttp2Stream) => {
        const id = stream.id ?? 0;
        if (id > w.seen) w.seen = id;
      });
      s.once("close", () => this.h2Sessions.delete(s));
    });
    this.h2Check = setInterval(
      () => this.checkH2Headers(performance.now()),
      headersCheckIntervalMs(limits.headersTimeoutMs),
    ).unref();

    this.server = o.tls
      ? tls.createServer({
          cert: o.tls.cert,
          key: o.tls.key,
          ALPNProtocols: ["h2", "http/1.1"],
          handshakeTimeout: limits.headersTimeoutMs,
        })
      : net.createServer({ noDelay: true });
    this.server.maxConnections = limits.maxConnections;
    this.server.on("connection", (s: net.Socket) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
    if (o.tls) {
      this.server.on("secureConnection", (s: tls.TLSSocket) =>
        (s.alpnProtocol === "h2" ? this.h2 : this.h1).emit("connection", s),
      );
      this.server.on("tlsClientError", (_err, s) => s.destroy());
    } else {
      this.server.on("connection", (s: net.Socket) => this.cleartext(s));
    }
  }

  /** Connections open now (for tests and the bound on them). */
  get connections(): number {
    return this.sockets.size;
  }

  /**
   * Closes every HTTP/2 session with a header block in progress for longer
   * than the headers timeout (H2HeaderWatch). The whole session goes, not
   * just the stream: until the block ends no other frame of the session can
   * be read, so its other streams are stuck behind it anyway.
   */
  private checkH2Headers(now: number): void {
    for (const [s, w] of this.h2Sessions) {
      if (s.destroyed) {
        this.h2Sessions.delete(s);
        continue;
      }
      const last = s.state.lastProcStreamID ?? 0;
      if (last <= w.seen) {
        w.pending = 0;
        continue;
      }
      if (w.pending !== last) {
        w.pending = last;
        w.since = now;
        // Answered only after the block (or a malformed stream nghttp2 reset): then it is over.
        s.ping((err) => {
          if (err || w.pending !== last) return;
          w.seen = Math.max(w.seen, last);
          w.pending = 0;
        });
        continue;
      }
      if (now - w.since >= this.limits.headersTimeoutMs) {
        this.h2Sessions.delete(s);
        s.destroy(undefined, http2.constants.NGHTTP2_PROTOCOL_ERROR);
      }
    }
  }

  /** h2c with prior knowledge or HTTP/1.1, told apart by the first bytes. */
  private cleartext(s: net.Socket): void {
    let seen = Buffer.alloc(0);
    const timer = setTimeout(() => s.destroy(), this.limits.headersTimeoutMs);
    const onData = (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      const proto = sniff(seen);
      if (!proto) return;
      clearTimeout(timer);
      s.off("data", onData);
      s.pause();
      if (proto === "h2") {
        // The HTTP/2 session reads what was taken back before it attaches.
        s.unshift(seen);
        this.h2.emit("connection", s);
      } else {
        // The HTTP/1 parser reads the socket natively once attached: what was
        // already read reaches it as the event it listens to.
        this.h1.emit("connection", s);
        s.emit("data", seen);
        s.resume();
      }
    };
    s.on("data", onData);
    s.on("error", () => clearTimeout(timer));
    s.on("close", () => clearTimeout(timer));
  }

  listen(port: number, host: string): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        const a = this.server.address() as { address: string; port: number };
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  /** Stops listening and drops every connection (streams in flight included). */
  async close(): Promise<void> {
    clearInterval(this.h2Check);
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    for (const s of this.sockets) s.destroy();
    this.h1.closeAllConnections();
    // Stops the headers-timeout timer started by the "listening" above.
    this.h1.close(() => {});
    await closed;
  }
}
