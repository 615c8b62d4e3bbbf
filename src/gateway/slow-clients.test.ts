// Slow and idle clients against a gateway in a process of its own
// (test/support/gateway-fixture.ts), over real loopback sockets: a client
// trickling its headers (slowloris), a body that stalls or trickles forever,
// many of them at once beside a normal client, the bound on connections, and
// the gateway's memory meanwhile. Short timeouts here; the defaults are
// checked in listener.test.ts.
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import type { FixtureConfig } from "../../test/support/gateway-fixture.js";

const REPO = join(import.meta.dirname, "../..");

interface Fixture {
  port: number;
  tokens: string[];
  child: ChildProcess;
  state(): Promise<{ connections: number; rss: number }>;
  rss(): number;
  stop(): Promise<void>;
}

async function startFixture(config: FixtureConfig): Promise<Fixture> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(REPO, "test/support/gateway-fixture.ts"), JSON.stringify(config)],
    { cwd: REPO, stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, NODE_OPTIONS: "" } },
  );
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", resolve);
    child.once("exit", (code) => reject(new Error(`the fixture exited (${code})`)));
  });
  const { port, tokens, control } = JSON.parse(line) as {
    port: number;
    tokens: string[];
    control: number;
  };
  return {
    port,
    tokens,
    child,
    state: async () => (await fetch(`http://127.0.0.1:${control}/`)).json() as never,
    // The kernel's count, the whole process: what the gateway costs the node.
    rss: () => {
      if (child.exitCode !== null || child.signalCode !== null) return 0;
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"));
      return m ? Number(m[1]) * 1024 : 0;
    },
    stop: async () => {
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await gone;
    },
  };
}

/** What a raw connection saw: the first bytes of a response, when it closed, after how long. */
interface Outcome {
  response: string;
  ms: number;
}

/** Longer than any timeout here: a connection still open then was never cut off. */
const GIVE_UP_MS = 10_000;

/**
 * Opens a raw TCP connection, lets `drive` write to it (return a cleanup for
 * timers), and resolves when the gateway closes it (or after GIVE_UP_MS,
 * closed by us: `ms` then says so).
 */
function raw(
  port: number,
  /** May return a cleanup (for its timers), run when the connection closes. */
  drive: (s: net.Socket) => unknown,
): Promise<Outcome> {
  return new Promise((resolve) => {
    const started = performance.now();
    let response = "";
    const s = net.connect(port, "127.0.0.1");
    const giveUp = setTimeout(() => s.destroy(), GIVE_UP_MS);
    let cleanup: (() => void) | undefined;
    s.on("connect", () => {
      const c = drive(s);
      if (typeof c === "function") cleanup = c as () => void;
    });
    s.on("data", (d) => {
      response += d.toString("latin1");
    });
    s.on("error", () => {});
    s.on("close", () => {
      clearTimeout(giveUp);
      cleanup?.();
      resolve({ response, ms: performance.now() - started });
    });
  });
}

/** Request headers, one line every `everyMs`, never the blank line that ends them. */
const trickleHeaders =
  (path: string, everyMs: number) =>
  (s: net.Socket): (() => void) => {
    s.write(`GET ${path} HTTP/1.1\r\nHost: gw\r\n`);
    let i = 0;
    const t = setInterval(() => s.write(`X-Slow-${i++}: y\r\n`), everyMs);
    return () => clearInterval(t);
  };

/** A PUT declaring `length` bytes, then `first` bytes, then one byte every `everyMs` (0: never). */
const trickleBody =
  (path: string, token: string, o: { length: number; first: number; everyMs: number }) =>
  (s: net.Socket): (() => void) => {
    s.write(
      `PUT ${path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${token}\r\nContent-Length: ${o.length}\r\n\r\n`,
    );
    s.write(Buffer.alloc(o.first, 97));
    if (!o.everyMs) return () => {};
    const t = setInterval(() => s.writable && s.write("a"), o.everyMs);
    return () => clearInterval(t);
  };

const H2_PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const H2_END_STREAM = 0x1;
const H2_END_HEADERS = 0x4;
/** HPACK, static table: :method GET, :scheme http, :path /. */
const H2_GET_ROOT = [0x82, 0x86, 0x84];

/** An HTTP/2 frame: 9-byte header (length, type, flags, stream) and payload. */
function h2Frame(type: number, flags: number, stream: number, payload: number[] = []): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, Buffer.from(payload)]);
}

/** HPACK literal without indexing, new name; short strings (< 127 bytes), no Huffman. */
function h2Literal(name: string, value?: string): number[] {
  const out = [0x00, name.length, ...Buffer.from(name)];
  return value === undefined ? out : [...out, value.length, ...Buffer.from(value)];
}

/** The complete frames in what a raw HTTP/2 connection received. */
function h2Frames(b: Buffer): { type: number; flags: number; stream: number; payload: Buffer }[] {
  const frames: { type: number; flags: number; stream: number; payload: Buffer }[] = [];
  for (let at = 0; at + 9 <= b.length; ) {
    const len = b.readUIntBE(at, 3);
    if (at + 9 + len > b.length) break;
    frames.push({
      type: b[at + 3]!,
      flags: b[at + 4]!,
      stream: b.readUInt32BE(at + 5) & 0x7fffffff,
      payload: b.subarray(at + 9, at + 9 + len),
    });
    at += 9 + len;
  }
  return frames;
}

const status = (o: Outcome) => Number(/^HTTP\/1\.1 (\d{3})/.exec(o.response)?.[1] ?? 0);

/** A normal request through the gateway: its status and how long it took. */
async function normal(port: number, token: string): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  const res = await fetch(`http://127.0.0.1:${port}/sandboxes/ns/box/ports/8000/sink`, {
    method: "POST",
    body: "hello",
    headers: { authorization: `Bearer ${token}` },
  });
  const body = await res.text();
  expect(body).toBe("5");
  return { status: res.status, ms: performance.now() - started };
}

const HEADERS_MS = 800;
const BODY_IDLE_MS = 600;
const REQUEST_MS = 2000;
let gw: Fixture;

beforeAll(async () => {
  gw = await startFixture({
    listener: { headersTimeoutMs: HEADERS_MS, keepAliveTimeoutMs: 500, maxConnections: 1000 },
    limits: {
      bodyIdleTimeoutMs: BODY_IDLE_MS,
      requestTimeoutMs: REQUEST_MS,
      concurrentPerCredential: 1000,
      concurrentPerSandbox: 1000,
      perCredential: { rps: 10_000, burst: 10_000 },
      perSandbox: { rps: 10_000, burst: 10_000 },
    },
    tokens: 2,
  });
}, 30_000);

afterAll(async () => {
  await gw?.stop();
});

describe("slow clients are cut off", { timeout: 15_000 }, () => {
  it("a client trickling its request headers gets 408 at the headers timeout", async () => {
    const o = await raw(gw.port, trickleHeaders("/sandboxes/ns/box/ports/8001/", 100));
    expect(status(o)).toBe(408);
    // Not before the timeout, and not long after it (Node checks on an interval).
    expect(o.ms).toBeGreaterThanOrEqual(HEADERS_MS - 50);
    expect(o.ms).toBeLessThan(HEADERS_MS + 1000);
  });

  it("a connection that sends nothing, or too little to tell its protocol, is closed at the headers timeout", async () => {
    const [silent, ambiguous] = await Promise.all([
      raw(gw.port, () => {}),
      raw(gw.port, (s) => void s.write("P")),
    ]);
    for (const o of [silent, ambiguous]) {
      expect(o.ms).toBeGreaterThanOrEqual(HEADERS_MS - 50);
      expect(o.ms).toBeLessThan(HEADERS_MS + 1000);
    }
  });

  it("headers over the size bound are refused with 431", async () => {
    const o = await raw(gw.port, (s) => {
      s.write(
        `GET /sandboxes/ns/box/ports/8001/ HTTP/1.1\r\nHost: gw\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`,
      );
    });
    expect(status(o)).toBe(431);
  });

  it("an idle keep-alive connection is closed after the keep-alive timeout", async () => {
    const o = await raw(gw.port, (s) => {
      s.write("GET /sandboxes/ns/box/ports/8001/ HTTP/1.1\r\nHost: gw\r\n\r\n");
    });
    expect(status(o)).toBe(200);
    // Node gives the client an extra second over keepAliveTimeout (its
    // keepAliveTimeoutBuffer), against races with clients reusing the socket.
    expect(o.ms).toBeGreaterThanOrEqual(500);
    expect(o.ms).toBeLessThan(500 + 1000 + 700);
  });

  it.each([
    ["a port route", "/sandboxes/ns/box/ports/8000/sink"],
    ["an agent route (file upload)", "/v1/namespaces/ns/sandboxes/box/files/content?path=/x"],
  ])("%s: a request body that stalls gets 408 at the body idle timeout", async (_what, path) => {
    const o = await raw(
      gw.port,
      trickleBody(path, gw.tokens[0]!, { length: 100, first: 10, everyMs: 0 }),
    );
    expect(status(o)).toBe(408);
    expect(o.response).toContain("REQUEST_TIMEOUT");
    expect(o.ms).toBeGreaterThanOrEqual(BODY_IDLE_MS - 50);
    expect(o.ms).toBeLessThan(BODY_IDLE_MS + 1000);
  });

  it("a request body trickling forever (under the idle timeout) gets 408 at the request timeout", async () => {
    const o = await raw(
      gw.port,
      trickleBody("/sandboxes/ns/box/ports/8000/sink", gw.tokens[0]!, {
        length: 1 << 20,
        first: 1,
        everyMs: BODY_IDLE_MS / 4,
      }),
    );
    expect(status(o)).toBe(408);
    expect(o.ms).toBeGreaterThanOrEqual(REQUEST_MS - 50);
    expect(o.ms).toBeLessThan(REQUEST_MS + 1000);
  });

  it("HTTP/2: a stream whose body stalls gets 408 at the body idle timeout, the session serves on", async () => {
    const session = http2.connect(`http://127.0.0.1:${gw.port}`);
    try {
      const started = performance.now();
      const stalled = session.request({
        ":method": "PUT",
        ":path": "/sandboxes/ns/box/ports/8000/sink",
        authorization: `Bearer ${gw.tokens[0]}`,
        "content-length": "100",
      });
      stalled.write(Buffer.alloc(10));
      const code = await new Promise<number>((r) =>
        stalled.on("response", (h) => r(Number(h[":status"]))),
      );
      expect(code).toBe(408);
      expect(performance.now() - started).toBeGreaterThanOrEqual(BODY_IDLE_MS - 50);
      stalled.close();
      const next = session.request({
        ":method": "GET",
        ":path": "/sandboxes/ns/box/ports/8001/",
      });
      next.end();
      expect(
        await new Promise<number>((r) => next.on("response", (h) => r(Number(h[":status"])))),
      ).toBe(200);
      next.close();
    } finally {
      session.close();
    }
  });

  it("HTTP/2: a stream whose header block never ends closes the session at the headers timeout", async () => {
    // A HEADERS frame declaring a header it then sends a byte at a time: Node
    // never sees the stream (its headers are incomplete), only the bytes.
    const value = 150;
    const head = [...H2_GET_ROOT, ...h2Literal("x-slow"), 0x7f, value - 127];
    const frame = h2Frame(1, H2_END_HEADERS | H2_END_STREAM, 1, [
      ...head,
      ...Buffer.alloc(value, "a"),
    ]);
    const o = await raw(gw.port, (s) => {
      s.write(H2_PREFACE);
      s.write(h2Frame(4, 0, 0)); // SETTINGS
      let at = 9 + head.length;
      s.write(frame.subarray(0, at));
      const t = setInterval(() => {
        if (at < frame.length - 1 && s.writable) s.write(frame.subarray(at, ++at));
      }, 100);
      return () => clearInterval(t);
    });
    expect(o.ms).toBeGreaterThanOrEqual(HEADERS_MS - 50);
    expect(o.ms).toBeLessThan(HEADERS_MS + 1000);
  });

  it("HTTP/2: a session idle past the headers timeout, or after a malformed request, serves on", async () => {
    const got: Buffer[] = [];
    const s = net.connect(gw.port, "127.0.0.1");
    let acked = 0;
    s.on("data", (d) => {
      got.push(d);
      // PINGs are answered, as any HTTP/2 client does.
      const frames = h2Frames(Buffer.concat(got));
      for (const f of frames.slice(acked))
        if (f.type === 6 && !(f.flags & 1)) s.write(h2Frame(6, 1, 0, [...f.payload]));
      acked = frames.length;
    });
    s.on("error", () => {});
    onTestFinished(() => void s.destroy());
    await new Promise((r) => s.once("connect", r));
    s.write(H2_PREFACE);
    s.write(h2Frame(4, 0, 0));
    s.write(h2Frame(4, 1, 0)); // SETTINGS ACK
    // No :path: nghttp2 resets the stream itself, it never reaches the gateway.
    s.write(
      h2Frame(1, H2_END_HEADERS | H2_END_STREAM, 1, [0x82, 0x86, ...h2Literal(":authority", "gw")]),
    );
    await new Promise((r) => setTimeout(r, HEADERS_MS + 700));
    expect(s.destroyed).toBe(false);
    s.write(
      h2Frame(1, H2_END_HEADERS | H2_END_STREAM, 3, [
        0x82,
        0x86,
        ...h2Literal(":path", "/sandboxes/ns/box/ports/8001/"),
        ...h2Literal(":authority", "gw"),
      ]),
    );
    // A HEADERS frame (type 1) back on stream 3: the answer.
    await expect
      .poll(() => h2Frames(Buffer.concat(got)).some((f) => f.type === 1 && f.stream === 3))
      .toBe(true);
  });

  it("an exec stream (its body is stdin) stays open while quiet, past both body timeouts", async () => {
    const path = "/v1/namespaces/ns/sandboxes/box/exec";
    const req = http.request(`http://127.0.0.1:${gw.port}${path}`, {
      method: "POST",
      agent: false,
      headers: { authorization: `Bearer ${gw.tokens[0]}`, "transfer-encoding": "chunked" },
    });
    req.write("spec");
    const res = await new Promise<http.IncomingMessage>((r) => req.on("response", r));
    expect(res.statusCode).toBe(200);
    let closed = false;
    res.on("close", () => {
      closed = true;
    });
    await new Promise((r) => setTimeout(r, REQUEST_MS + 300));
    expect(closed).toBe(false);
    req.end("more stdin");
    const body = await new Promise<string>((resolve) => {
      let b = "";
      res.on("data", (c) => {
        b += c;
      });
      res.on("end", () => resolve(b));
    });
    expect(body).toBe(String("specmore stdin".length));
  });
});

/**
 * Many slow clients at once, against a gateway bounded to 500 connections
 * whose timeouts (5 s) outlast opening them all on a busy machine.
 */
const CROWD_TIMEOUT_MS = 5000;
const CROWD_MAX = 500;

describe("many slow clients at once", { timeout: 40_000 }, () => {
  it("a normal client is still served, memory stays bounded, connections past the bound are closed, all are cut off", async () => {
    const crowd = await startFixture({
      listener: { headersTimeoutMs: CROWD_TIMEOUT_MS, maxConnections: CROWD_MAX },
      limits: {
        bodyIdleTimeoutMs: CROWD_TIMEOUT_MS,
        concurrentPerCredential: 1000,
        concurrentPerSandbox: 1000,
        perCredential: { rps: 10_000, burst: 10_000 },
        perSandbox: { rps: 10_000, burst: 10_000 },
      },
      tokens: 2,
    });
    try {
      const before = crowd.rss();
      let peak = before;
      const sampler = setInterval(() => {
        peak = Math.max(peak, crowd.rss());
      }, 50);
      onTestFinished(() => clearInterval(sampler));
      const slow = [
        // Each holds up to the header bound in the gateway's parser.
        ...Array.from({ length: 300 }, () =>
          raw(crowd.port, (s) => {
            s.write(
              `GET /sandboxes/ns/box/ports/8001/ HTTP/1.1\r\nHost: gw\r\nX-Pad: ${"p".repeat(12_000)}`,
            );
            const t = setInterval(() => s.write("p"), 100);
            return () => clearInterval(t);
          }),
        ),
        ...Array.from({ length: 100 }, () =>
          raw(
            crowd.port,
            trickleBody("/sandboxes/ns/box/ports/8000/sink", crowd.tokens[1]!, {
              length: 1 << 20,
              first: 1000,
              everyMs: 0,
            }),
          ),
        ),
      ];
      await expect.poll(async () => (await crowd.state()).connections, { timeout: 4000 }).toBe(400);
      // While they hang on, normal requests are served at once.
      for (let i = 0; i < 10; i++) {
        const n = await normal(crowd.port, crowd.tokens[0]!);
        expect(n.status).toBe(200);
        expect(n.ms).toBeLessThan(300);
      }
      // Up to the bound with idle connections: the next one is closed unanswered.
      const idle = Array.from({ length: CROWD_MAX - 400 }, () => raw(crowd.port, () => {}));
      await expect
        .poll(async () => (await crowd.state()).connections, { timeout: 2000 })
        .toBe(CROWD_MAX);
      const refused = await raw(crowd.port, (s) => {
        s.write("GET /sandboxes/ns/box/ports/8001/ HTTP/1.1\r\nHost: gw\r\n\r\n");
      });
      expect([refused.response, refused.ms < 500]).toEqual(["", true]);

      const outcomes = await Promise.all(slow).finally(() => clearInterval(sampler));
      await Promise.all(idle);
      // Every one of them was cut off by the gateway, not by us giving up
      // (GIVE_UP_MS), and none was answered otherwise than 408. (Some see no
      // answer at all: they were still writing when the gateway closed, and
      // the reset that met their next write drops the 408 unread; one client
      // alone always reads it, above.)
      expect(outcomes.filter((o) => o.ms >= GIVE_UP_MS - 500)).toEqual([]);
      expect(outcomes.map(status).filter((s) => s !== 408 && s !== 0)).toEqual([]);
      expect(outcomes.filter((o) => status(o) === 408).length).toBeGreaterThan(0);
      await expect.poll(async () => (await crowd.state()).connections).toBe(0);
      // Slots free: served again.
      expect((await normal(crowd.port, crowd.tokens[0]!)).status).toBe(200);
      console.log(
        `400 slow clients: gateway RSS ${(before / 2 ** 20).toFixed(0)} -> peak ${(peak / 2 ** 20).toFixed(0)} MiB`,
      );
      // 300 x 12 KB of headers is 3.6 MB; sockets, parsers and a lagging
      // GC on a busy machine add some (10-50 MiB seen): a bound on
      // connections times what each may hold, nowhere near unbounded.
      expect(peak - before).toBeLessThan(96 * 2 ** 20);
    } finally {
      await crowd.stop();
    }
  });
});
