// The gateway end to end on the docker backend: the real control plane (RBAC,
// TokenReview, SubjectAccessReview), the operator with the docker backend on
// the real dockerd, the in-sandbox agent, and `sandbox-operator gateway` run
// as two replicas (child processes). Every refusal of the authorization matrix
// is checked for its status, its code, and for having done nothing.
import { createHash, generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import * as k8s from "@kubernetes/client-node";
import type Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { WebSocket } from "ws";
import { Sandbox } from "../../packages/sdk/src/index.js";
import { API_VERSION, GROUP, SANDBOX_KIND, SANDBOX_PLURAL, VERSION } from "../../src/api/group.js";
import { AgentClient } from "../../src/dataplane/client.js";
import { dockerAgentEndpoint } from "../../src/dataplane/docker.js";
import { encodeFrame, FrameDecoder } from "../../src/dataplane/frames.js";
import { FrameType } from "../../src/dataplane/protocol.js";
import { loadKeys } from "../../src/gateway/keys.js";
import { mintToken } from "../../src/gateway/tokens.js";
import { buildAgent } from "../support/agent.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { ensureDockerd, removeOwnedBy, SANDBOX_IMAGE } from "../support/docker.js";
import { eventually } from "../support/eventually.js";
import { type GatewayProcess, keyDir, startGatewayProcess } from "../support/gateway.js";
import { type RunningOperator, startDockerOperator } from "../support/operator.js";

const kc = kubeConfig();
const OWNER = `test-gw-${process.pid}`;
let ns: Awaited<ReturnType<typeof testNamespace>>;
let engine: Docker;
let operator: RunningOperator | undefined;
let keys: string;
let gwA: GatewayProcess;
let gwB: GatewayProcess;
const tokens: Record<string, string> = {};

/** A workload serving ports 8000 (private) and 8001 (public): echo, streaming, raw upgrade echo. */
const SERVER = String.raw`
import hashlib, json, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def any(self):
        if self.headers.get("upgrade"):
            self.send_response(101); self.send_header("upgrade", self.headers["upgrade"]); self.send_header("connection", "Upgrade"); self.end_headers(); self.wfile.flush()
            while True:
                d = self.connection.recv(65536)
                if not d: break
                self.connection.sendall(d.upper())
            self.close_connection = True
            return
        if self.path.startswith("/stream"):
            self.send_response(200); self.send_header("transfer-encoding", "chunked"); self.end_headers()
            for i in range(3):
                c = ("tick %d %f\n" % (i, time.time())).encode(); self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c)); self.wfile.flush(); time.sleep(0.4)
            self.wfile.write(b"0\r\n\r\n"); self.wfile.flush(); return
        n = int(self.headers.get("content-length") or 0); h = hashlib.sha256(); left = n
        while left > 0:
            d = self.rfile.read(min(left, 65536))
            if not d: break
            h.update(d); left -= len(d)
        body = json.dumps({"method": self.command, "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "bytes": n, "sha256": h.hexdigest(), "port": self.server.server_address[1]}).encode()
        self.send_response(200); self.send_header("content-type", "application/json"); self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = any
# A listen backlog for 100 concurrent uploads (the default is 5).
ThreadingHTTPServer.request_queue_size = 256
for p in (8000, 8001):
    threading.Thread(target=ThreadingHTTPServer(("0.0.0.0", p), H).serve_forever, daemon=True).start()
threading.Event().wait()
`;

const custom = () => kc.makeApiClient(k8s.CustomObjectsApi);
const rbac = () => kc.makeApiClient(k8s.RbacAuthorizationV1Api);
const core = () => kc.makeApiClient(k8s.CoreV1Api);

async function serviceAccountToken(name: string, verbs: string[]): Promise<string> {
  await core().createNamespacedServiceAccount({ namespace: ns.name, body: { metadata: { name } } });
  await rbac().createNamespacedRole({
    namespace: ns.name,
    body: {
      metadata: { name },
      rules: [{ apiGroups: [GROUP], resources: [SANDBOX_PLURAL], verbs }],
    },
  });
  await rbac().createNamespacedRoleBinding({
    namespace: ns.name,
    body: {
      metadata: { name },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
      subjects: [{ kind: "ServiceAccount", name, namespace: ns.name }],
    },
  });
  const tr = await core().createNamespacedServiceAccountToken({
    namespace: ns.name,
    name,
    body: { spec: { audiences: [], expirationSeconds: 3600 } } as k8s.AuthenticationV1TokenRequest,
  });
  return tr.status!.token!;
}

const sdk = () => ({ kubeconfig: kc, namespace: ns.name, docker: engine });
const base = (name: string, gw = gwA) => `${gw.url}/v1/namespaces/${ns.name}/sandboxes/${name}`;

async function call(
  method: string,
  url: string,
  o: {
    token?: string;
    authorization?: string;
    body?: string | Buffer;
    headers?: Record<string, string>;
  } = {},
) {
  const res = await fetch(url, {
    method,
    headers: {
      ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
      ...(o.authorization ? { authorization: o.authorization } : {}),
      ...o.headers,
    },
    ...(o.body !== undefined ? { body: o.body } : {}),
  });
  const text = await res.text();
  // biome-ignore lint/suspicious/noExplicitAny: answers of several shapes, read field by field in assertions
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, text, json, headers: res.headers };
}

/** An exec through the gateway's POST exec route (the SDK's wire format). */
function client(name: string, token: string, gw = gwA): AgentClient {
  const u = new URL(gw.url);
  return new AgentClient({
    host: u.hostname,
    port: Number(u.port),
    token,
    basePath: `/v1/namespaces/${ns.name}/sandboxes/${name}`,
  });
}

async function mint(name: string, verbs: string[], ttlSeconds = 600, token = tokens.runner!) {
  // Through replica B: replica A is killed mid-test (any replica mints, any verifies).
  const r = await call("POST", `${base(name, gwB)}/tokens`, {
    token,
    body: JSON.stringify({ verbs, ttlSeconds }),
  });
  expect(r.status, r.text).toBe(201);
  return r.json.token as string;
}

beforeAll(async () => {
  engine = await ensureDockerd();
  buildAgent();
  ns = await testNamespace(kc, "gw");
  operator = await startDockerOperator({
    namespace: ns.name,
    user: "operator-1",
    engine,
    owner: OWNER,
    upstreamDns: "127.0.0.1",
  });
  keys = keyDir();
  const dockerHost = `unix://${(engine.modem as { socketPath?: string }).socketPath}`;
  const logDir = mkdtempSync(join(tmpdir(), "gw-logs-"));
  const extra = [
    "--max-concurrent=256",
    "--max-concurrent-per-sandbox=512",
    "--rate=1000",
    "--burst=2000",
    "--sandbox-rate=2000",
  ];
  const started = await Promise.all(
    ["gateway-a", "gateway-b"].map((name) =>
      startGatewayProcess({
        name,
        kubeconfig: inject("kubeconfigPath"),
        keysDir: keys,
        dockerHost,
        logDir,
        extra,
      }),
    ),
  );
  gwA = started[0]!;
  gwB = started[1]!;
  tokens.runner = await serviceAccountToken("runner", [
    "get",
    "exec",
    "files",
    "connect",
    "logs",
    "mint",
  ]);
  tokens.reader = await serviceAccountToken("reader", ["get"]);
  await Promise.all([
    Sandbox.create(
      {
        image: SANDBOX_IMAGE,
        command: ["python3", "-c", SERVER],
        ports: [
          { name: "http", port: 8000 },
          { name: "web", port: 8001, visibility: "public" },
        ],
      },
      { ...sdk(), name: "box" },
    ),
    Sandbox.create(
      { image: SANDBOX_IMAGE, command: ["sleep", "3600"] },
      { ...sdk(), name: "other" },
    ),
    Sandbox.create(
      { image: SANDBOX_IMAGE, command: ["sleep", "3600"] },
      { ...sdk(), name: "again" },
    ),
  ]);
}, 600_000);

afterAll(async () => {
  await Promise.all([gwA?.stop(), gwB?.stop()]);
  await operator?.stop();
  await removeOwnedBy(OWNER);
  await ns?.delete();
});

describe("the gateway on the docker backend", () => {
  it("serves its OpenAPI document and refuses unknown routes before authentication", async () => {
    const doc = await call("GET", `${gwA.url}/openapi.json`);
    expect(doc.status).toBe(200);
    expect(doc.json.openapi).toBe("3.1.0");
    expect(doc.json.components.schemas.ExecSpec.properties.argv).toBeDefined();
    expect(Object.keys(doc.json.paths)).toContain(
      "/v1/namespaces/{namespace}/sandboxes/{name}/exec",
    );
    expect(
      (await call("GET", `${gwA.url}/v1/namespaces/${ns.name}/sandboxes/box/etc`)).status,
    ).toBe(404);
    expect(
      (await call("GET", `${gwA.url}/v1/namespaces/${ns.name}/sandboxes/box/files/..%2f..%2fx`))
        .status,
    ).toBe(400);
  });

  it("drives a sandbox with a Kubernetes token authorized by RBAC: exec, files, processes", async () => {
    const c = client("box", tokens.runner!);
    expect(await c.exec(["sh", "-c", "echo out; echo err >&2; exit 3"])).toMatchObject({
      stdout: "out\n",
      stderr: "err\n",
      exitCode: 3,
    });
    const data = randomBytes(5 << 20);
    await c.writeFile("/tmp/ü data.bin", data);
    expect(
      createHash("sha256")
        .update(await c.readFile("/tmp/ü data.bin"))
        .digest("hex"),
    ).toBe(createHash("sha256").update(data).digest("hex"));
    const p = await c.startProcess(["sh", "-c", "echo bg"]);
    expect((await c.waitProcess(p.id)).exit?.exitCode).toBe(0);
    expect((await c.exec(["cat"], { stdin: "piped" })).stdout).toBe("piped");
    c.close();
  });

  it("mints a scoped token that drives its sandbox, over HTTP and over a WebSocket", async () => {
    const token = await mint("box", ["exec", "files", "get"]);
    expect(token.startsWith("sgw1.")).toBe(true);
    const c = client("box", token);
    expect((await c.exec(["id", "-u"])).stdout).toBe("1000\n");
    expect((await c.version()).protocol).toBe(1);
    c.close();
    const got = await call("GET", base("box"), { token });
    expect(got.json.metadata.name).toBe("box");

    const ws = new WebSocket(
      `${gwA.url.replace("http", "ws")}/v1/namespaces/${ns.name}/sandboxes/box/exec`,
      { headers: { authorization: `Bearer ${token}` } },
    );
    const dec = new FrameDecoder();
    const out = { stdout: "", stderr: "" };
    const exit = new Promise<unknown>((resolve, reject) => {
      ws.on("message", (m: Buffer) => {
        for (const f of dec.push(Buffer.from(m))) {
          if (f.type === FrameType.stdout) out.stdout += f.payload;
          if (f.type === FrameType.stderr) out.stderr += f.payload;
          if (f.type === FrameType.exit) resolve(JSON.parse(f.payload.toString()));
          if (f.type === FrameType.error) reject(new Error(f.payload.toString()));
        }
      });
      ws.on("error", reject);
    });
    await new Promise((r) => ws.once("open", r));
    ws.send(
      encodeFrame(
        FrameType.spec,
        Buffer.from(JSON.stringify({ argv: ["sh", "-c", "cat; echo done >&2"], stdin: true })),
      ),
    );
    ws.send(encodeFrame(FrameType.stdin, Buffer.from("over a websocket")));
    ws.send(encodeFrame(FrameType.stdinEof));
    expect(await exit).toMatchObject({ exitCode: 0 });
    expect(out).toEqual({ stdout: "over a websocket", stderr: "done\n" });
    ws.close();
  });

  it("the SDK picks the gateway from SANDBOX_GATEWAY_URL and a token, with no code change", async () => {
    const token = await mint("box", ["exec", "files", "get", "connect", "logs"]);
    const saved = { ...process.env };
    Object.assign(process.env, {
      SANDBOX_GATEWAY_URL: gwB.url,
      SANDBOX_GATEWAY_TOKEN: token,
      SANDBOX_NAMESPACE: ns.name,
    });
    try {
      const box = await Sandbox.get("box");
      expect((await box.exec(["python3", "-c", "print(1+1)"])).stdout).toBe("2\n");
      await box.files.write("/tmp/sdk.txt", "through the gateway");
      expect(await box.files.readText("/tmp/sdk.txt")).toBe("through the gateway");
      const res = await box.fetch(8000, "/hello?x=1", {
        method: "POST",
        body: "abc",
        headers: { authorization: "Bearer app-own" },
      });
      const echoed = (await res.json()) as { headers: Record<string, string> };
      expect(echoed).toMatchObject({ method: "POST", path: "/hello?x=1", bytes: 3 });
      // The workload's own Authorization passes; the gateway's credential never reaches it.
      expect(echoed.headers.authorization).toBe("Bearer app-own");
      expect(JSON.stringify(echoed.headers)).not.toContain(token);
      box.close();
      // Without the verb the SDK surfaces the refusal as a typed error.
      process.env.SANDBOX_GATEWAY_TOKEN = await mint("box", ["get"]);
      const limited = await Sandbox.get("box");
      await expect(limited.exec(["true"])).rejects.toMatchObject({ status: 403 });
      limited.close();
    } finally {
      for (const k of ["SANDBOX_GATEWAY_URL", "SANDBOX_GATEWAY_TOKEN", "SANDBOX_NAMESPACE"])
        delete process.env[k];
      Object.assign(process.env, saved);
    }
  });

  it("routes to declared ports by path: method, headers, body intact, X-Forwarded-*, streaming, upgrades", async () => {
    const token = await mint("box", ["connect"]);
    const body = randomBytes(3 << 20);
    const r = await call("PUT", `${gwA.url}/sandboxes/${ns.name}/box/ports/8000/up/load?q=ü`, {
      token,
      body,
      headers: { "x-custom": "kept", "x-forwarded-for": "6.6.6.6" },
    });
    expect(r.status, r.text).toBe(200);
    expect(r.json).toMatchObject({
      method: "PUT",
      path: "/up/load?q=%C3%BC",
      bytes: body.length,
      port: 8000,
    });
    expect(r.json.sha256).toBe(createHash("sha256").update(body).digest("hex"));
    expect(r.json.headers).toMatchObject({
      "x-custom": "kept",
      "x-forwarded-for": "127.0.0.1", // the client's claim is replaced, not trusted
      "x-forwarded-proto": "http",
      "x-forwarded-prefix": `/sandboxes/${ns.name}/box/ports/8000`,
    });
    expect(r.json.headers.authorization).toBeUndefined();

    // Streaming: chunks arrive as the workload sends them, not at the end.
    const res = await fetch(`${gwA.url}/sandboxes/${ns.name}/box/ports/8000/stream`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const arrivals: number[] = [];
    for await (const _ of res.body!) arrivals.push(Date.now());
    expect(arrivals.length).toBeGreaterThanOrEqual(2);
    expect(arrivals.at(-1)! - arrivals[0]!).toBeGreaterThan(500);

    // An upgraded connection (any protocol) is piped both ways.
    const echoed = await new Promise<string>((resolve, reject) => {
      const req = http.request(`${gwA.url}/sandboxes/${ns.name}/box/ports/8000/raw`, {
        headers: { connection: "Upgrade", upgrade: "echo", authorization: `Bearer ${token}` },
      });
      req.on("upgrade", (res2, socket) => {
        expect(res2.statusCode).toBe(101);
        socket.write("shout");
        socket.once("data", (d) => {
          resolve(d.toString());
          socket.destroy();
        });
      });
      req.on("error", reject);
      req.end();
    });
    expect(echoed).toBe("SHOUT");

    // Public port: no credential needed; private port: refused without one; undeclared: refused.
    expect(
      (await call("GET", `${gwA.url}/sandboxes/${ns.name}/box/ports/8001/pub`)).json,
    ).toMatchObject({ port: 8001, path: "/pub" });
    expect((await call("GET", `${gwA.url}/sandboxes/${ns.name}/box/ports/8000/`)).status).toBe(401);
    const undeclared = await call(
      "GET",
      `${gwA.url}/sandboxes/${ns.name}/box/ports/15099/v1/version`,
      { token },
    );
    expect([undeclared.status, undeclared.json.error.code]).toEqual([404, "PORT_NOT_DECLARED"]);
    // Unauthenticated, an undeclared port says nothing about the sandbox.
    expect((await call("GET", `${gwA.url}/sandboxes/${ns.name}/box/ports/15099/`)).status).toBe(
      401,
    );
  });

  it("a browser exchanges a scoped token in the URL for a cookie the sandbox never sees", async () => {
    const token = await mint("box", ["connect"]);
    const prefix = `/sandboxes/${ns.name}/box/ports/8000`;
    const first = await fetch(`${gwA.url}${prefix}/page?a=1&sandbox_token=${token}`, {
      redirect: "manual",
    });
    expect(first.status).toBe(303);
    expect(first.headers.get("location")).toBe(`${prefix}/page?a=1`);
    const cookie = first.headers.get("set-cookie")!;
    expect(cookie).toMatch(
      new RegExp(
        `^sandbox_gateway_token=${token}; Path=${prefix}; Max-Age=\\d+; HttpOnly; SameSite=Lax$`,
      ),
    );
    const r = await call("GET", `${gwA.url}${prefix}/page?a=1`, {
      headers: { cookie: `theirs=1; sandbox_gateway_token=${token}` },
    });
    expect(r.status, r.text).toBe(200);
    expect(r.json.headers.cookie).toBe("theirs=1");
    // Only scoped tokens, and only for a sandbox they open.
    const k8sToken = await call("GET", `${gwA.url}${prefix}/?sandbox_token=${tokens.runner}`);
    expect(k8sToken.status).toBe(400);
    const other = await call(
      "GET",
      `${gwA.url}${prefix}/?sandbox_token=${await mint("other", ["connect"])}`,
    );
    expect([other.status, other.json.error.code]).toEqual([403, "WRONG_SANDBOX"]);
  });

  it("routes to declared ports by host, and reaches sandboxes at their published ports when told", async () => {
    const token = await mint("box", ["connect", "exec"]);
    const gw = new URL(gwA.url);
    // The Host header of a wildcard DNS name, sent to the gateway's address.
    const hostRouted = await startGatewayProcess({
      name: "gateway-host",
      kubeconfig: inject("kubeconfigPath"),
      keysDir: keys,
      dockerHost: `unix://${(engine.modem as { socketPath?: string }).socketPath}`,
      logDir: mkdtempSync(join(tmpdir(), "gw-logs-")),
      // gateway-a and -b reach sandboxes over the bridge (the default with a
      // local daemon); this one through Docker's published ports.
      extra: ["--domain=sbx.example.test", "--docker-route=published"],
    });
    try {
      const exec = client("box", token, hostRouted);
      expect((await exec.exec(["echo", "published"])).stdout).toBe("published\n");
      exec.close();
      const u = new URL(hostRouted.url);
      const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request(
          {
            host: u.hostname,
            port: u.port,
            path: "/by/host",
            headers: {
              host: `8000-box--${ns.name}.sbx.example.test`,
              authorization: `Bearer ${token}`,
            },
          },
          (r) => {
            let b = "";
            r.on("data", (c) => {
              b += c;
            });
            r.on("end", () => resolve({ status: r.statusCode!, body: b }));
          },
        );
        req.on("error", reject);
        req.end();
      });
      expect(res.status, res.body).toBe(200);
      expect(JSON.parse(res.body)).toMatchObject({
        path: "/by/host",
        headers: { "x-forwarded-host": `8000-box--${ns.name}.sbx.example.test` },
      });
    } finally {
      await hostRouted.stop();
    }
    void gw;
  });

  describe("the authorization matrix: each refused with its status, and nothing done", () => {
    const attempts: string[] = [];
    /** Tries to create /tmp/<marker> through exec; the refusal must leave no marker. */
    async function attempt(
      name: string,
      marker: string,
      o: { token?: string; authorization?: string },
    ) {
      attempts.push(marker);
      const c = new URL(`${base(name)}/files/content?path=/tmp/${marker}`);
      const r = await call("PUT", c.toString(), { ...o, body: "x" });
      const e = await call("POST", `${base(name)}/processes`, {
        ...o,
        body: JSON.stringify({ argv: ["touch", `/tmp/${marker}-exec`] }),
        headers: { "content-type": "application/json" },
      });
      expect(e.status).toBe(r.status);
      return r;
    }

    it.each([
      ["no credential", {}, 401, "NO_CREDENTIAL"],
      ["a malformed header", { authorization: "Basic YWxpY2U6eA==" }, 401, "MALFORMED_CREDENTIAL"],
      ["an unknown bearer token", { token: "not-a-token" }, 401, "TOKEN_REJECTED"],
      ["a malformed scoped token", { token: "sgw1.x.y" }, 401, "TOKEN_MALFORMED"],
    ])("%s", async (_what, o, status, code) => {
      const r = await attempt("box", `m-${code}`, o);
      expect([r.status, r.json?.error?.code]).toEqual([status, code]);
      expect(r.headers.get("www-authenticate")).toMatch(/^Bearer/);
    });

    it("an expired token, and one with a forged signature", async () => {
      const { signing } = loadKeys(keys);
      const box = await call("GET", base("box"), { token: tokens.runner! });
      const claims = {
        ns: ns.name,
        name: "box",
        uid: box.json.metadata.uid,
        verbs: ["files" as const, "exec" as const],
        sub: "test",
      };
      const expired = mintToken(signing!, { ...claims, exp: Math.floor(Date.now() / 1000) - 5 });
      let r = await attempt("box", "m-expired", { token: expired });
      expect([r.status, r.json.error.code]).toEqual([401, "TOKEN_EXPIRED"]);
      const forged = mintToken(
        { kid: signing!.kid, privateKey: generateKeyPairSync("ed25519").privateKey },
        { ...claims, exp: Math.floor(Date.now() / 1000) + 600 },
      );
      r = await attempt("box", "m-forged", { token: forged });
      expect([r.status, r.json.error.code]).toEqual([401, "TOKEN_BAD_SIGNATURE"]);
      const unknownKey = mintToken(
        { kid: "unknownkid", privateKey: generateKeyPairSync("ed25519").privateKey },
        { ...claims, exp: Math.floor(Date.now() / 1000) + 600 },
      );
      r = await attempt("box", "m-unknown-key", { token: unknownKey });
      expect([r.status, r.json.error.code]).toEqual([401, "TOKEN_UNKNOWN_KEY"]);
    });

    it("another sandbox's token, and a token without the verb", async () => {
      let r = await attempt("box", "m-other", { token: await mint("other", ["exec", "files"]) });
      expect([r.status, r.json.error.code]).toEqual([403, "WRONG_SANDBOX"]);
      r = await attempt("box", "m-verb", { token: await mint("box", ["get", "connect"]) });
      expect([r.status, r.json.error.code]).toEqual([403, "VERB_NOT_GRANTED"]);
      // A scoped token cannot mint, not even for its own sandbox.
      const scoped = await mint("box", ["exec", "files"]);
      const m = await call("POST", `${base("box")}/tokens`, {
        token: scoped,
        body: JSON.stringify({ verbs: ["exec"], ttlSeconds: 60 }),
      });
      expect([m.status, m.json.error.code]).toEqual([403, "VERB_NOT_GRANTED"]);
    });

    it("a user without the RBAC verb; minting more than one holds", async () => {
      const r = await attempt("box", "m-rbac", { token: tokens.reader! });
      expect([r.status, r.json.error.code]).toEqual([403, "RBAC_DENIED"]);
      expect((await call("GET", base("box"), { token: tokens.reader! })).status).toBe(200);
      const m = await call("POST", `${base("box")}/tokens`, {
        token: tokens.reader!,
        body: JSON.stringify({ verbs: ["exec"], ttlSeconds: 60 }),
      });
      expect([m.status, m.json.error.code]).toEqual([403, "RBAC_DENIED"]);
      // And a namespace where the user has no Role at all.
      const elsewhere = await call(
        "GET",
        `${gwA.url}/v1/namespaces/default/sandboxes/box/version`,
        { token: tokens.runner! },
      );
      expect([elsewhere.status, elsewhere.json.error.code]).toEqual([403, "RBAC_DENIED"]);
    });

    it("a deleted-and-recreated sandbox of the same name", { timeout: 180_000 }, async () => {
      const old = await mint("again", ["exec", "files"]);
      const first = await Sandbox.get("again", sdk());
      await first.delete();
      await eventually(
        async () =>
          expect((await call("GET", base("again"), { token: tokens.runner! })).status).toBe(404),
        { timeout: 60_000 },
      );
      const second = await Sandbox.create(
        { image: SANDBOX_IMAGE, command: ["sleep", "3600"] },
        { ...sdk(), name: "again" },
      );
      await eventually(async () => {
        const r = await call("GET", `${base("again")}/processes`, { token: old });
        expect([r.status, r.json.error.code]).toEqual([403, "SANDBOX_RECREATED"]);
      });
      const r = await attempt("again", "m-recreated", { token: old });
      expect([r.status, r.json.error.code]).toEqual([403, "SANDBOX_RECREATED"]);
      second.close();
    });

    it("a Terminating sandbox", { timeout: 180_000 }, async () => {
      await custom().createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: ns.name,
        plural: SANDBOX_PLURAL,
        body: {
          apiVersion: API_VERSION,
          kind: SANDBOX_KIND,
          metadata: { name: "held", finalizers: ["test.sandboxing.dev/hold"] },
          spec: { image: SANDBOX_IMAGE, command: ["sleep", "3600"] },
        },
      });
      const held = await Sandbox.get("held", sdk());
      await held.waitUntilReady();
      const token = await mint("held", ["exec", "files"]);
      await held.delete();
      await eventually(async () => {
        const r = await call("GET", `${base("held")}/version`, { token: tokens.runner! });
        expect([r.status, r.json.error.code]).toEqual([409, "SANDBOX_TERMINATING"]);
      });
      for (const o of [{ token }, { token: tokens.runner! }]) {
        const r = await attempt("held", `m-terminating-${o.token.slice(0, 4)}`, o);
        expect([r.status, r.json.error.code]).toEqual([409, "SANDBOX_TERMINATING"]);
      }
      await custom()
        .patchNamespacedCustomObject(
          {
            group: GROUP,
            version: VERSION,
            namespace: ns.name,
            plural: SANDBOX_PLURAL,
            name: "held",
            body: [{ op: "remove", path: "/metadata/finalizers/0" }],
          },
          k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.JsonPatch),
        )
        .catch(() => {});
    });

    it("left nothing behind: no refused request created a file or ran a process", async () => {
      for (const name of ["box", "again"]) {
        const ep = await dockerAgentEndpoint(engine, { namespace: ns.name, name });
        const direct = new AgentClient(ep);
        const files = (await direct.list("/tmp")).map((f) => f.name);
        for (const marker of attempts) {
          expect(files).not.toContain(marker);
          expect(files).not.toContain(`${marker}-exec`);
        }
        expect((await direct.listProcesses()).some((p) => p.argv[0] === "touch")).toBe(false);
        direct.close();
      }
    });
  });

  it("audits every call in one line and counts it by verb and result", async () => {
    // Audit lines are written in batches, at most 200 ms after their call.
    await eventually(
      () => {
        const lines = readFileSync(gwA.logPath, "utf8")
          .split("\n")
          .filter((l) => l.includes('"audit"'))
          .map((l) => JSON.parse(l).audit);
        const refused = lines.find((a) => a.result === "RBAC_DENIED");
        expect(refused).toMatchObject({
          who: `system:serviceaccount:${ns.name}:reader`,
          sandbox: `${ns.name}/box`,
          status: 403,
        });
        const upload = lines.find(
          (a) =>
            a.verb === "files" && a.method === "PUT" && a.status === 200 && a.bytesIn === 5 << 20,
        );
        expect(upload?.who).toBe(`system:serviceaccount:${ns.name}:runner`);
      },
      { timeout: 5000 },
    );
    const metrics = await (await fetch(`${gwA.metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(/sandbox_gateway_requests_total\{verb="exec",result="ok"\} [1-9]/);
    expect(metrics).toMatch(
      /sandbox_gateway_requests_total\{verb="files",result="RBAC_DENIED"\} [1-9]/,
    );
  });

  it("a replica killed mid-stream loses only its own streams", { timeout: 120_000 }, async () => {
    const token = await mint("box", ["exec"]);
    const script = ["sh", "-c", "for i in $(seq 1 30); do echo $i; sleep 0.1; done"];
    const onA = client("box", token, gwA).execStream(script);
    const onB = client("box", token, gwB).execStream(script);
    const firstA = new Promise((r) => onA.stdout.once("data", r));
    let outB = "";
    onB.stdout.on("data", (c) => {
      outB += c;
    });
    await firstA;
    gwA.child.kill("SIGKILL");
    await expect(onA.exit).rejects.toBeDefined();
    expect(await onB.exit).toMatchObject({ exitCode: 0 });
    expect(outB.trim().split("\n")).toHaveLength(30);
  });

  it.each([
    [
      "to a file (the agent's route)",
      "files",
      "/v1/namespaces/{ns}/sandboxes/box/files/content?path=/dev/null",
    ],
    [
      "to a declared port (undici upstream leg)",
      "connect",
      "/sandboxes/{ns}/box/ports/8000/upload",
    ],
  ] as const)(
    "100 concurrent 50 MB uploads %s pass in bounded memory",
    { timeout: 600_000 },
    async (_what, verb, route) => {
      const token = await mint("box", [verb]);
      const pid = gwB.child.pid!;
      const rss = () =>
        Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;
      const before = rss();
      let peak = before;
      const sampler = setInterval(() => {
        peak = Math.max(peak, rss());
      }, 50);
      const SIZE = 50 << 20;
      const chunk = randomBytes(1 << 20);
      const u = new URL(gwB.url);
      const agent = new http.Agent({ keepAlive: false, maxSockets: 200 });
      const started = performance.now();
      const uploads = Promise.all(
        Array.from(
          { length: 100 },
          () =>
            new Promise<number>((resolve, reject) => {
              const req = http.request(
                {
                  agent,
                  host: u.hostname,
                  port: u.port,
                  method: "PUT",
                  path: route.replace("{ns}", ns.name),
                  headers: { authorization: `Bearer ${token}`, "content-length": SIZE },
                },
                (res) => {
                  let b = "";
                  res.on("data", (c) => {
                    b += c;
                  });
                  res.on("end", () =>
                    res.statusCode === 200
                      ? resolve(JSON.parse(b).bytes)
                      : reject(new Error(`${res.statusCode} ${b}`)),
                  );
                },
              );
              req.on("error", reject);
              Readable.from(
                (function* () {
                  for (let i = 0; i < 50; i++) yield chunk;
                })(),
              ).pipe(req);
            }),
        ),
      );
      const results = await uploads.finally(() => {
        clearInterval(sampler);
        agent.destroy();
      });
      const seconds = (performance.now() - started) / 1000;
      expect(results.every((n) => n === SIZE)).toBe(true);
      const growth = peak - before;
      console.log(
        `100 x 50 MB ${_what} through the gateway in ${seconds.toFixed(1)} s (${((100 * SIZE) / seconds / 2 ** 20).toFixed(0)} MiB/s); gateway RSS ${(before / 2 ** 20).toFixed(0)} -> peak ${(peak / 2 ** 20).toFixed(0)} MiB`,
      );
      // 5,000 MiB went through; the gateway holds socket buffers, not bodies.
      expect(growth).toBeLessThan(256 * 2 ** 20);
    },
  );
});
