// The port route's proxying over real loopback sockets: a Gateway (scoped
// tokens, limits, audit, metrics) in front of a node:http workload, the
// Sandbox fixed (the informer-backed directory and both backends are covered
// by test/docker/gateway*.test.ts and test/node/gateway.test.ts). What the
// undici upstream leg must keep: bodies intact and streamed both ways, size
// limits, clean 502/504 on upstream failure, a client abort reaching the
// workload, hop-by-hop headers dropped, HTTP/2 clients.
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../observability/logger.js";
import { Auth } from "./auth.js";
import type { Directory, SandboxObject } from "./directory.js";
import { generateKeyFiles, KeyStore, SIGNING_KEY_FILE } from "./keys.js";
import { gatewayMetrics } from "./metrics.js";
import { Gateway } from "./server.js";
import { mintToken } from "./tokens.js";
import { originOf, responseHeaders, upstreamRefusal } from "./upstream.js";

const MAX_UPLOAD = 4 << 20;

/** The workload: what it saw, per path. */
const seen: Record<string, { headers: http.IncomingHttpHeaders; sha?: string; bytes?: number }> =
  {};
let firstBodyChunk: (() => void) | undefined;
let aborted: (() => void) | undefined;
const FLOOD = 64 << 20;
let floodWritten = 0;

const workload = http.createServer((req, res) => {
  const path = req.url ?? "/";
  seen[path] = { headers: req.headers };
  if (path.startsWith("/echo")) {
    // Echoes the body back as it arrives (streamed both ways).
    const hash = createHash("sha256");
    let bytes = 0;
    req.on("data", (c: Buffer) => {
      if (bytes === 0) firstBodyChunk?.();
      bytes += c.length;
      hash.update(c);
    });
    res.writeHead(200, { "content-type": "application/octet-stream" });
    req.pipe(res);
    req.on("end", () => {
      seen[path] = { headers: req.headers, sha: hash.digest("hex"), bytes };
    });
    return;
  }
  if (path === "/sink") {
    // Answers only once the whole body is in (a body over the limit never is).
    let bytes = 0;
    req.on("data", (c: Buffer) => {
      bytes += c.length;
    });
    req.on("end", () => res.end(String(bytes)));
    return;
  }
  if (path === "/stream") {
    res.writeHead(200, { "content-type": "text/plain" });
    res.write("first\n");
    setTimeout(() => res.end("second\n"), 600);
    return;
  }
  if (path === "/forever") {
    // Headers, a first chunk, then nothing: until the client goes away.
    res.writeHead(200, { "content-type": "text/plain" });
    res.write("x");
    res.on("close", () => aborted?.());
    return;
  }
  if (path === "/silent") return; // never answers
  if (path === "/flood") {
    // 64 MiB as fast as the connection takes it; how much it took is in floodWritten.
    res.writeHead(200, { "content-length": String(FLOOD) });
    const chunk = Buffer.alloc(1 << 20, 120);
    const more = () => {
      while (floodWritten < FLOOD) {
        floodWritten += chunk.length;
        if (!res.write(chunk)) return void res.once("drain", more);
      }
      res.end();
    };
    more();
    return;
  }
  if (path === "/die") {
    res.writeHead(200, { "content-length": "100" });
    res.write("partial");
    setTimeout(() => res.socket?.destroy(), 50);
    return;
  }
  if (path === "/headers") {
    res.setHeader("set-cookie", ["a=1", "b=2"]);
    res.setHeader("x-private", "hop");
    res.setHeader("connection", "x-private");
    res.end("ok");
    return;
  }
  res.end("ok");
});

let gateway: Gateway;
let base: string;
let token: string;
let workloadPort: number;
const sandboxPorts = (): { name: string; port: number; visibility: string }[] => [
  { name: "http", port: 8000, visibility: "private" },
  { name: "dead", port: 8001, visibility: "private" },
];

beforeAll(async () => {
  await new Promise<void>((r) => workload.listen(0, "127.0.0.1", r));
  workloadPort = (workload.address() as AddressInfo).port;
  // A port nothing listens on (bound, then closed): "connection refused".
  const dead = http.createServer();
  await new Promise<void>((r) => dead.listen(0, "127.0.0.1", r));
  const deadPort = (dead.address() as AddressInfo).port;
  await new Promise<void>((r) => dead.close(() => r()));

  const keysDir = mkdtempSync(join(tmpdir(), "gw-proxy-"));
  writeFileSync(join(keysDir, SIGNING_KEY_FILE), generateKeyFiles().privatePem);
  const keys = new KeyStore(keysDir);
  const sandbox = {
    metadata: { name: "box", namespace: "ns", uid: "u1" },
    spec: { ports: sandboxPorts() },
  } as unknown as SandboxObject;
  const directory = {
    get: (ns: string, name: string) => (ns === "ns" && name === "box" ? sandbox : undefined),
    reach: () => ({
      port: (_s: SandboxObject, p: number) => ({
        host: "127.0.0.1",
        port: p === 8000 ? workloadPort : deadPort,
      }),
    }),
  } as unknown as Directory;
  gateway = new Gateway({
    auth: new Auth({ kubeConfig: undefined as never, keys }),
    keys,
    directory,
    log: silentLogger(),
    metrics: gatewayMetrics(new Registry()),
    maxTokenTtlSeconds: 3600,
    limits: { maxUploadBytes: MAX_UPLOAD, concurrentPerCredential: 3 },
    upstreamHeadersTimeoutMs: 500,
    ready: () => undefined,
  });
  const { port } = await gateway.listen(0, "127.0.0.1");
  base = `http://127.0.0.1:${port}/sandboxes/ns/box/ports`;
  token = mintToken(keys.keys.signing!, {
    ns: "ns",
    name: "box",
    uid: "u1",
    verbs: ["connect"],
    exp: Math.floor(Date.now() / 1000) + 600,
    sub: "test",
  });
});

afterAll(async () => {
  await gateway.close();
  workload.closeAllConnections();
  await new Promise<void>((r) => workload.close(() => r()));
});

/** One HTTP/1.1 request through the gateway, the response body collected. */
function send(
  method: string,
  path: string,
  o: { headers?: http.OutgoingHttpHeaders; body?: (req: http.ClientRequest) => void } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, {
      method,
      agent: false,
      headers: { authorization: `Bearer ${token}`, ...o.headers },
    });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    if (o.body) o.body(req);
    else req.end();
  });
}

const code = (body: Buffer) =>
  (JSON.parse(body.toString()) as { error: { code: string } }).error.code;

describe("port routing over the undici upstream leg", () => {
  it("a body goes up and comes back intact; hop-by-hop headers are dropped, X-Forwarded-* set", async () => {
    const body = randomBytes(3 << 20);
    const r = await send("PUT", "/8000/echo?a=b", {
      headers: { "x-custom": "kept", "x-forwarded-for": "6.6.6.6", "content-length": body.length },
      body: (req) => req.end(body),
    });
    expect(r.status).toBe(200);
    expect(createHash("sha256").update(r.body).digest("hex")).toBe(
      createHash("sha256").update(body).digest("hex"),
    );
    const up = seen["/echo?a=b"]!;
    expect(up.bytes).toBe(body.length);
    expect(up.headers).toMatchObject({
      "x-custom": "kept",
      "x-forwarded-for": "127.0.0.1",
      "x-forwarded-proto": "http",
      "x-forwarded-prefix": "/sandboxes/ns/box/ports/8000",
    });
    expect(up.headers.authorization).toBeUndefined();
  });

  it("Expect: 100-continue is answered by the gateway, the body still arrives", async () => {
    const r = await send("POST", "/8000/echo-continue", {
      headers: { expect: "100-continue", "content-length": 5 },
      body: (req) => req.on("continue", () => req.end("hello")),
    });
    expect([r.status, r.body.toString()]).toEqual([200, "hello"]);
    expect(seen["/echo-continue"]!.headers.expect).toBeUndefined();
  });

  it("the workload's response headers pass, except hop-by-hop ones; several Set-Cookie stay several", async () => {
    const r = await send("GET", "/8000/headers");
    expect(r.headers["set-cookie"]).toEqual(["a=1", "b=2"]);
    expect(r.headers["x-private"]).toBeUndefined();
  });

  it("streams: the request body reaches the workload before the client has sent all of it", async () => {
    const got = new Promise<void>((r) => {
      firstBodyChunk = r;
    });
    const r = await send("POST", "/8000/echo-stream", {
      headers: { "transfer-encoding": "chunked" },
      body: (req) => {
        req.write("first chunk");
        // The rest only once the workload holds the first: no buffering in between.
        void got.then(() => req.end("the rest"));
      },
    });
    firstBodyChunk = undefined;
    expect([r.status, r.body.toString()]).toEqual([200, "first chunkthe rest"]);
  });

  it("streams: response chunks reach the client as the workload sends them", async () => {
    const arrivals: number[] = [];
    await new Promise<void>((resolve, reject) => {
      http
        .get(`${base}/8000/stream`, { headers: { authorization: `Bearer ${token}` } }, (res) => {
          res.on("data", () => arrivals.push(Date.now()));
          res.on("end", resolve);
        })
        .on("error", reject);
    });
    expect(arrivals.length).toBeGreaterThanOrEqual(2);
    expect(arrivals.at(-1)! - arrivals[0]!).toBeGreaterThan(400);
  });

  it("413 for a declared length over the limit, and for a chunked body that grows past it", async () => {
    const declared = await send("PUT", "/8000/sink", {
      headers: { "content-length": MAX_UPLOAD + 1 },
      body: (req) => req.end(),
    });
    expect([declared.status, code(declared.body)]).toEqual([413, "BODY_TOO_LARGE"]);
    const chunk = Buffer.alloc(1 << 20);
    const streamed = await send("PUT", "/8000/sink", {
      headers: { "transfer-encoding": "chunked" },
      body: (req) => {
        let n = 0;
        const more = () => {
          // Stop once the gateway has answered (it closes the connection).
          while (n++ < 8) if (!req.write(chunk)) return void req.once("drain", more);
          req.end();
        };
        req.on("error", () => {});
        more();
      },
    });
    expect([streamed.status, code(streamed.body)]).toEqual([413, "BODY_TOO_LARGE"]);
  });

  it("a refused connection is a 502, a workload that does not answer a 504; the gateway serves on", async () => {
    const refused = await send("GET", "/8001/");
    expect([refused.status, code(refused.body)]).toEqual([502, "UPSTREAM_ERROR"]);
    const silent = await send("GET", "/8000/silent");
    expect([silent.status, code(silent.body)]).toEqual([504, "UPSTREAM_TIMEOUT"]);
    expect((await send("GET", "/8000/")).body.toString()).toBe("ok");
  });

  it("a workload dying mid-response cuts the client's response, nothing else", async () => {
    await expect(send("GET", "/8000/die")).rejects.toThrow();
    expect((await send("GET", "/8000/")).body.toString()).toBe("ok");
  });

  it("a client that goes away aborts the upstream request", async () => {
    const closed = new Promise<void>((r) => {
      aborted = r;
    });
    await new Promise<void>((resolve, reject) => {
      const req = http.get(
        `${base}/8000/forever`,
        { headers: { authorization: `Bearer ${token}` }, agent: false },
        (res) => {
          res.once("data", () => {
            req.destroy();
            resolve();
          });
        },
      );
      req.on("error", () => {});
      setTimeout(() => reject(new Error("no first chunk")), 5000);
    });
    await closed; // the workload saw its response closed
  });

  it("a client that does not read holds the workload back: socket buffers, not the body", async () => {
    floodWritten = 0;
    let received = 0;
    const req = http.get(`${base}/8000/flood`, {
      headers: { authorization: `Bearer ${token}` },
      agent: false,
    });
    const res = await new Promise<http.IncomingMessage>((r) => req.on("response", r));
    res.pause();
    await new Promise((r) => setTimeout(r, 1500));
    const whilePaused = floodWritten;
    // Loopback socket buffers on three connections' worth of kernel and
    // stream buffers, nowhere near the 64 MiB the workload has to send.
    expect(whilePaused).toBeLessThan(24 << 20);
    res.on("data", (c: Buffer) => {
      received += c.length;
    });
    res.resume();
    await new Promise((r) => res.on("end", r));
    expect(received).toBe(FLOOD);
  });

  it("in-flight requests per credential are capped (429), and freed when they end", async () => {
    const held = await Promise.all(
      [1, 2, 3].map(
        () =>
          new Promise<http.ClientRequest>((resolve) => {
            const req = http.get(`${base}/8000/forever`, {
              headers: { authorization: `Bearer ${token}` },
              agent: false,
            });
            req.on("response", (res) => res.once("data", () => resolve(req)));
            req.on("error", () => {});
          }),
      ),
    );
    const over = await send("GET", "/8000/");
    expect([over.status, code(over.body)]).toEqual([429, "TOO_MANY_IN_FLIGHT"]);
    for (const r of held) r.destroy();
    await expect
      .poll(async () => (await send("GET", "/8000/")).status, { timeout: 5000 })
      .toBe(200);
  });

  it("HTTP/2 clients: the same route, body intact both ways", async () => {
    const session = http2.connect(base.replace(/\/sandboxes.*/, ""));
    try {
      const body = randomBytes(1 << 20);
      const s = session.request({
        ":method": "POST",
        ":path": "/sandboxes/ns/box/ports/8000/echo-h2",
        authorization: `Bearer ${token}`,
      });
      s.end(body);
      const chunks: Buffer[] = [];
      let status = 0;
      s.on("response", (h) => {
        status = Number(h[":status"]);
      });
      s.on("data", (c: Buffer) => chunks.push(c));
      await new Promise((r) => s.on("end", r));
      expect(status).toBe(200);
      expect(Buffer.concat(chunks).equals(body)).toBe(true);
      expect(Object.keys(seen["/echo-h2"]!.headers).some((k) => k.startsWith(":"))).toBe(false);
    } finally {
      session.close();
    }
  });
});

describe("upstream: pure parts", () => {
  it.each([
    [Object.assign(new Error("x"), { code: "UND_ERR_HEADERS_TIMEOUT" }), 504, "UPSTREAM_TIMEOUT"],
    [Object.assign(new Error("x"), { code: "ECONNREFUSED" }), 502, "UPSTREAM_ERROR"],
    [Object.assign(new Error("x"), { code: "UND_ERR_SOCKET" }), 502, "UPSTREAM_ERROR"],
    [Object.assign(new Error("x"), { code: "UND_ERR_MAX_ORIGINS_REACHED" }), 503, "UPSTREAM_BUSY"],
  ])("%s -> %i %s", (err, status, c) => {
    expect(upstreamRefusal(err)).toMatchObject({ status, code: c });
  });

  it("origins bracket IPv6 hosts", () => {
    expect(originOf("10.0.0.1", 80)).toBe("http://10.0.0.1:80");
    expect(originOf("fd00::1", 8080)).toBe("http://[fd00::1]:8080");
  });

  it("response headers: hop-by-hop and Connection-named headers dropped", () => {
    expect(
      responseHeaders({
        "content-type": "text/plain",
        connection: "x-a, close",
        "x-a": "1",
        "keep-alive": "timeout=5",
        "transfer-encoding": "chunked",
        "set-cookie": ["a", "b"],
      }),
    ).toEqual({ "content-type": "text/plain", "set-cookie": ["a", "b"] });
  });
});
