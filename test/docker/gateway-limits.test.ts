// The gateway's limits and its replicas' independence, end to end on the
// docker backend: the real control plane, the operator on the real dockerd,
// the in-sandbox agent, and `sandbox-operator gateway` processes.
//
// - Per-credential and per-sandbox rate limits and in-flight caps: the
//   request over the limit is refused with 429 and Retry-After, did nothing
//   in the sandbox, leaves other credentials and sandboxes alone, is audited
//   and counted; the cap frees when the requests in flight end, the rate
//   after its window.
// - A replica killed mid-stream loses only its own port streams (a streamed
//   HTTP response and a WebSocket): the other replica's run to completion
//   intact, the killed one's clients see an error, not a hang.
import { mkdtempSync, readFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import * as k8s from "@kubernetes/client-node";
import type Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { WebSocket } from "ws";
import { Sandbox } from "../../packages/sdk/src/index.js";
import { GROUP, SANDBOX_PLURAL, VERSION } from "../../src/api/group.js";
import { AgentClient } from "../../src/dataplane/client.js";
import { dockerAgentEndpoint } from "../../src/dataplane/docker.js";
import { loadKeys } from "../../src/gateway/keys.js";
import { mintToken } from "../../src/gateway/tokens.js";
import type { Verb } from "../../src/gateway/verbs.js";
import { buildAgent } from "../support/agent.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { ensureDockerd, removeOwnedBy, SANDBOX_IMAGE } from "../support/docker.js";
import { eventually } from "../support/eventually.js";
import { type GatewayProcess, keyDir, startGatewayProcess } from "../support/gateway.js";
import { type RunningOperator, startDockerOperator } from "../support/operator.js";

const kc = kubeConfig();
const OWNER = `test-gwlim-${process.pid}`;
let ns: Awaited<ReturnType<typeof testNamespace>>;
let engine: Docker;
let operator: RunningOperator | undefined;
let keys: string;
/** Rate limits: per credential 1/s (burst 2), per sandbox 2/s (burst 4). */
let gwRate: GatewayProcess;
/** In-flight caps: 2 per credential, 3 per sandbox. */
let gwConc: GatewayProcess;
/** Two replicas with the default limits, for the kill. */
let gwA: GatewayProcess;
let gwB: GatewayProcess;
const uids: Record<string, string> = {};

/**
 * On 8000: /stream?n=N&ms=M sends N chunks M ms apart; /ws is a WebSocket
 * sending N text messages M ms apart, then a normal close.
 */
const SERVER = String.raw`
import base64, hashlib, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        n = int(q.get("n", ["30"])[0]); ms = int(q.get("ms", ["100"])[0]) / 1000
        if self.path.startswith("/ws"):
            acc = base64.b64encode(hashlib.sha1((self.headers["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            self.send_response(101); self.send_header("upgrade", "websocket"); self.send_header("connection", "Upgrade"); self.send_header("sec-websocket-accept", acc); self.end_headers(); self.wfile.flush()
            for i in range(n):
                m = ("tick %d" % i).encode(); self.connection.sendall(bytes([0x81, len(m)]) + m); time.sleep(ms)
            self.connection.sendall(bytes([0x88, 2, 0x03, 0xE8]))
            try: self.connection.recv(64)
            except OSError: pass
            self.close_connection = True
            return
        self.send_response(200); self.send_header("transfer-encoding", "chunked"); self.end_headers()
        for i in range(n):
            c = ("tick %d\n" % i).encode(); self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c)); self.wfile.flush(); time.sleep(ms)
        self.wfile.write(b"0\r\n\r\n"); self.wfile.flush()
ThreadingHTTPServer(("0.0.0.0", 8000), H).serve_forever()
`;

/** A scoped token for one sandbox, signed with the gateways' key: each one a credential of its own. */
function token(
  name: string,
  verbs: Exclude<Verb, "mint">[] = ["get", "exec", "files", "connect"],
): string {
  return mintToken(loadKeys(keys).signing!, {
    ns: ns.name,
    name,
    uid: uids[name]!,
    verbs,
    exp: Math.floor(Date.now() / 1000) + 600,
    sub: `limits-test-${name}`,
  });
}

const base = (gw: GatewayProcess, name: string) =>
  `${gw.url}/v1/namespaces/${ns.name}/sandboxes/${name}`;

async function call(method: string, url: string, tok: string, body?: string) {
  const res = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${tok}` },
    ...(body !== undefined ? { body } : {}),
  });
  const text = await res.text();
  let code: string | undefined;
  try {
    code = JSON.parse(text).error?.code;
  } catch {}
  return { status: res.status, code, retryAfter: res.headers.get("retry-after"), text };
}

/** A side effect the refused request would have had: a file written in the sandbox. */
const writeFile = (gw: GatewayProcess, name: string, tok: string, marker: string) =>
  call("PUT", `${base(gw, name)}/files/content?path=/tmp/${marker}`, tok, "x");
/** And a process run: `touch /tmp/<marker>`. */
const runTouch = (gw: GatewayProcess, name: string, tok: string, marker: string) =>
  call(
    "POST",
    `${base(gw, name)}/processes`,
    tok,
    JSON.stringify({ argv: ["touch", `/tmp/${marker}`] }),
  );

/** What the sandbox's /tmp holds and which processes ran, asked of its agent directly. */
async function sandboxState(name: string): Promise<{ files: string[]; argv0: string[] }> {
  const direct = new AgentClient(await dockerAgentEndpoint(engine, { namespace: ns.name, name }));
  try {
    return {
      files: (await direct.list("/tmp")).map((f) => f.name),
      argv0: (await direct.listProcesses()).map((p) => p.argv.join(" ")),
    };
  } finally {
    direct.close();
  }
}

function auditLines(gw: GatewayProcess): Record<string, unknown>[] {
  return readFileSync(gw.logPath, "utf8")
    .split("\n")
    .filter((l) => l.includes('"audit"'))
    .map((l) => JSON.parse(l).audit);
}

/** An exec held in flight through the gateway until its stdin is ended. */
async function held(gw: GatewayProcess, name: string, tok: string) {
  const u = new URL(gw.url);
  const c = new AgentClient({
    host: u.hostname,
    port: Number(u.port),
    token: tok,
    basePath: `/v1/namespaces/${ns.name}/sandboxes/${name}`,
  });
  const stdin = new PassThrough();
  const h = c.execStream(["cat"], { stdin });
  await h.started;
  return {
    release: async () => {
      stdin.end();
      await h.exit;
      c.close();
    },
  };
}

beforeAll(async () => {
  engine = await ensureDockerd();
  buildAgent();
  ns = await testNamespace(kc, "gwlim");
  operator = await startDockerOperator({
    namespace: ns.name,
    user: "operator-1",
    engine,
    owner: OWNER,
    upstreamDns: "127.0.0.1",
  });
  keys = keyDir();
  const common = {
    kubeconfig: inject("kubeconfigPath"),
    keysDir: keys,
    dockerHost: `unix://${(engine.modem as { socketPath?: string }).socketPath}`,
    logDir: mkdtempSync(join(tmpdir(), "gwlim-logs-")),
  };
  const high = ["--max-concurrent=1000", "--max-concurrent-per-sandbox=1000"];
  [gwRate, gwConc, gwA, gwB] = await Promise.all([
    startGatewayProcess({
      ...common,
      name: "gateway-rate",
      extra: ["--rate=1", "--burst=2", "--sandbox-rate=2", ...high],
    }),
    startGatewayProcess({
      ...common,
      name: "gateway-conc",
      extra: [
        "--rate=1000",
        "--burst=1000",
        "--sandbox-rate=1000",
        "--max-concurrent=2",
        "--max-concurrent-per-sandbox=3",
      ],
    }),
    startGatewayProcess({ ...common, name: "gateway-a" }),
    startGatewayProcess({ ...common, name: "gateway-b" }),
  ]);
  const boxes = await Promise.all(
    ["box", "other"].map((name) =>
      Sandbox.create(
        {
          image: SANDBOX_IMAGE,
          command: ["python3", "-c", SERVER],
          ports: [{ name: "http", port: 8000 }],
        },
        { kubeconfig: kc, namespace: ns.name, docker: engine, name },
      ),
    ),
  );
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  for (const b of boxes) {
    const got = (await custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: ns.name,
      plural: SANDBOX_PLURAL,
      name: b.name,
    })) as { metadata: { uid: string } };
    uids[b.name] = got.metadata.uid;
    b.close();
  }
}, 600_000);

afterAll(async () => {
  await Promise.all([gwRate?.stop(), gwConc?.stop(), gwA?.stop(), gwB?.stop()]);
  await operator?.stop();
  await removeOwnedBy(OWNER);
  await ns?.delete();
});

describe("per-credential and per-sandbox limits through the gateway", () => {
  it("rate: the request past the burst is refused (429, Retry-After), did nothing, and others go on", async () => {
    const t1 = token("box");
    const t2 = token("box");
    const t3 = token("other");
    // Credential t1: its burst of 2, then refused; the refused one would have written a file.
    expect((await call("GET", base(gwRate, "box"), t1)).status).toBe(200);
    expect((await call("GET", base(gwRate, "box"), t1)).status).toBe(200);
    const overToken = await writeFile(gwRate, "box", t1, "rate-credential");
    expect([overToken.status, overToken.code, overToken.retryAfter]).toEqual([
      429,
      "RATE_LIMITED",
      "1",
    ]);
    expect(overToken.text).toContain("for this credential");
    // Another credential on the same sandbox is not held back by t1's limit:
    // box has 2 of its 4 left.
    expect((await call("GET", base(gwRate, "box"), t2)).status).toBe(200);
    expect((await call("GET", base(gwRate, "box"), t2)).status).toBe(200);
    // ...until box's own bucket is empty: the sandbox's limit, whoever asks.
    const overSandbox = await writeFile(gwRate, "box", token("box"), "rate-sandbox");
    expect([overSandbox.status, overSandbox.code, overSandbox.retryAfter]).toEqual([
      429,
      "RATE_LIMITED",
      "1",
    ]);
    expect(overSandbox.text).toContain("for this sandbox");
    // Another sandbox is not affected.
    const elsewhere = await writeFile(gwRate, "other", t3, "rate-other");
    expect(elsewhere.status, elsewhere.text).toBe(200);

    const state = await sandboxState("box");
    expect(state.files).not.toContain("rate-credential");
    expect(state.files).not.toContain("rate-sandbox");
    expect((await sandboxState("other")).files).toContain("rate-other");

    // After the window the Retry-After names (1/s for the credential, 2/s
    // for the sandbox), t1 is served again, and its write lands.
    await new Promise((r) => setTimeout(r, Number(overToken.retryAfter) * 1000));
    const later = await writeFile(gwRate, "box", t1, "rate-later");
    expect(later.status, later.text).toBe(200);
    expect((await sandboxState("box")).files).toContain("rate-later");
  });

  it("in flight: the request past the cap is refused (429), did nothing, others go on; the cap frees when they end", async () => {
    const t1 = token("box");
    const t2 = token("box");
    const t3 = token("box");
    const t4 = token("other");
    // Credential t1 holds its 2.
    const h1 = await Promise.all([held(gwConc, "box", t1), held(gwConc, "box", t1)]);
    const overToken = await runTouch(gwConc, "box", t1, "conc-credential");
    expect([overToken.status, overToken.code, overToken.retryAfter]).toEqual([
      429,
      "TOO_MANY_IN_FLIGHT",
      "1",
    ]);
    expect(overToken.text).toContain("for this credential");
    // Another credential is served on the same sandbox: box's third.
    const h2 = await held(gwConc, "box", t2);
    // Box holds its 3: a fourth is refused whoever asks...
    const overSandbox = await runTouch(gwConc, "box", t3, "conc-sandbox");
    expect([overSandbox.status, overSandbox.code, overSandbox.retryAfter]).toEqual([
      429,
      "TOO_MANY_IN_FLIGHT",
      "1",
    ]);
    expect(overSandbox.text).toContain("for this sandbox");
    // ...and another sandbox is not affected.
    expect((await runTouch(gwConc, "other", t4, "conc-other")).status).toBe(201);

    const state = await sandboxState("box");
    expect(state.files).not.toContain("conc-credential");
    expect(state.files).not.toContain("conc-sandbox");
    expect(
      state.argv0.some((a) => a.includes("conc-credential") || a.includes("conc-sandbox")),
    ).toBe(false);
    await eventually(async () =>
      expect((await sandboxState("other")).files).toContain("conc-other"),
    );

    // The in-flight requests end: the cap frees at once, for both.
    await Promise.all([...h1, h2].map((h) => h.release()));
    expect((await runTouch(gwConc, "box", t1, "conc-credential-later")).status).toBe(201);
    expect((await runTouch(gwConc, "box", t3, "conc-sandbox-later")).status).toBe(201);
    await eventually(async () =>
      expect((await sandboxState("box")).files).toEqual(
        expect.arrayContaining(["conc-credential-later", "conc-sandbox-later"]),
      ),
    );
  });

  it("the refusals are audited and counted by verb and result", async () => {
    // Audit lines are written in batches, at most 200 ms after their call.
    await eventually(
      () => {
        const rate = auditLines(gwRate).filter((a) => a.status === 429);
        expect(rate).toEqual(
          expect.arrayContaining([
            expect.objectContaining({
              verb: "files",
              result: "RATE_LIMITED",
              sandbox: `${ns.name}/box`,
              who: expect.stringMatching(/^token:.+ \(by limits-test-box\)$/),
              method: "PUT",
              bytesIn: 0,
            }),
          ]),
        );
        expect(rate).toHaveLength(2);
        const conc = auditLines(gwConc).filter((a) => a.status === 429);
        expect(conc.map((a) => [a.verb, a.result, a.sandbox])).toEqual([
          ["exec", "TOO_MANY_IN_FLIGHT", `${ns.name}/box`],
          ["exec", "TOO_MANY_IN_FLIGHT", `${ns.name}/box`],
        ]);
      },
      { timeout: 5000 },
    );
    const rateMetrics = await (await fetch(`${gwRate.metricsUrl}/metrics`)).text();
    expect(rateMetrics).toMatch(
      /sandbox_gateway_requests_total\{verb="files",result="RATE_LIMITED"\} 2\b/,
    );
    const concMetrics = await (await fetch(`${gwConc.metricsUrl}/metrics`)).text();
    expect(concMetrics).toMatch(
      /sandbox_gateway_requests_total\{verb="exec",result="TOO_MANY_IN_FLIGHT"\} 2\b/,
    );
  });
});

describe("a replica killed mid-stream loses only its own port streams", () => {
  /** A streamed HTTP response from port 8000 through one replica: its chunks, and how it ended. */
  function httpStream(gw: GatewayProcess, tok: string) {
    const chunks: string[] = [];
    let onFirst!: () => void;
    const gotFirst = new Promise<void>((r) => {
      onFirst = r;
    });
    const done = new Promise<{ ok: boolean; error?: string }>((resolve) => {
      const req = http.get(
        `${gw.url}/sandboxes/${ns.name}/box/ports/8000/stream?n=30&ms=100`,
        { headers: { authorization: `Bearer ${tok}` }, agent: false },
        (res) => {
          expect(res.statusCode).toBe(200);
          res.setEncoding("utf8");
          res.on("data", (c: string) => {
            chunks.push(c);
            onFirst();
          });
          res.on("end", () => resolve({ ok: true }));
          res.on("error", (e) => resolve({ ok: false, error: e.message }));
        },
      );
      req.on("error", (e) => resolve({ ok: false, error: e.message }));
    });
    return { gotFirst, done, text: () => chunks.join("") };
  }

  /** A WebSocket to port 8000 through one replica: its messages, and its close code. */
  function wsStream(gw: GatewayProcess, tok: string) {
    const messages: string[] = [];
    let onFirst!: () => void;
    const gotFirst = new Promise<void>((r) => {
      onFirst = r;
    });
    const ws = new WebSocket(
      `${gw.url.replace("http", "ws")}/sandboxes/${ns.name}/box/ports/8000/ws?n=30&ms=100`,
      { headers: { authorization: `Bearer ${tok}` } },
    );
    ws.on("message", (m: Buffer) => {
      messages.push(m.toString());
      onFirst();
    });
    ws.on("error", () => {});
    const done = new Promise<number>((resolve) => ws.on("close", (code) => resolve(code)));
    return { gotFirst, done, messages };
  }

  const ticks = (n: number) => Array.from({ length: n }, (_, i) => `tick ${i}`);

  it("HTTP and WebSocket streams through the other replica finish intact; the killed one's fail", async () => {
    const tok = token("box", ["connect"]);
    const onA = { http: httpStream(gwA, tok), ws: wsStream(gwA, tok) };
    const onB = { http: httpStream(gwB, tok), ws: wsStream(gwB, tok) };
    await Promise.all([onA.http.gotFirst, onA.ws.gotFirst, onB.http.gotFirst, onB.ws.gotFirst]);
    const killedAt = performance.now();
    gwA.child.kill("SIGKILL");

    // A's clients see an error (no normal end), promptly, and what they got is an intact prefix.
    const [aHttp, aWs] = await Promise.all([onA.http.done, onA.ws.done]);
    expect(aHttp.ok).toBe(false);
    expect(aWs).toBe(1006); // closed abnormally: no close frame
    expect(performance.now() - killedAt).toBeLessThan(2000);
    const aLines = onA.http.text().trim().split("\n");
    expect(aLines.length).toBeLessThan(30);
    expect(aLines).toEqual(ticks(aLines.length));
    expect(onA.ws.messages.length).toBeLessThan(30);
    expect(onA.ws.messages).toEqual(ticks(onA.ws.messages.length));

    // B's run to their end, every chunk and message there, in order.
    const [bHttp, bWs] = await Promise.all([onB.http.done, onB.ws.done]);
    expect(bHttp).toEqual({ ok: true });
    expect(onB.http.text().trim().split("\n")).toEqual(ticks(30));
    expect(bWs).toBe(1000);
    expect(onB.ws.messages).toEqual(ticks(30));
  });
});
