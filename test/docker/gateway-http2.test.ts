// The gateway over HTTP/2: TLS with ALPN h2 and cleartext h2c (prior
// knowledge), each beside HTTP/1.1 on the same port, through the same
// authentication, authorization and limits; exec streams full duplex on one
// HTTP/2 stream. The real control plane, the operator's docker backend on the
// real dockerd, the in-sandbox agent, `sandbox-operator gateway` processes.
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import http2 from "node:http2";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Sandbox } from "../../packages/sdk/src/index.js";
import { GROUP, SANDBOX_PLURAL } from "../../src/api/group.js";
import { encodeFrame, FrameDecoder } from "../../src/dataplane/frames.js";
import { FrameType } from "../../src/dataplane/protocol.js";
import { buildAgent } from "../support/agent.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { ensureDockerd, removeOwnedBy, SANDBOX_IMAGE } from "../support/docker.js";
import { type GatewayProcess, keyDir, startGatewayProcess } from "../support/gateway.js";
import { type RunningOperator, startDockerOperator } from "../support/operator.js";

const kc = kubeConfig();
const OWNER = `test-gwh2-${process.pid}`;
let ns: Awaited<ReturnType<typeof testNamespace>>;
let operator: RunningOperator | undefined;
let tlsGw: GatewayProcess;
let plainGw: GatewayProcess;
let ca: Buffer;
let runner: string; // get, exec, files, connect on sandboxes
let reader: string; // get only

/** Echoes method, path, headers and the body's size and digest as JSON, on 8000. */
const ECHO = `
import hashlib, json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def any(self):
        n = int(self.headers.get("content-length") or 0); d = self.rfile.read(n)
        body = json.dumps({"method": self.command, "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "bytes": n, "sha256": hashlib.sha256(d).hexdigest()}).encode()
        self.send_response(200); self.send_header("content-type", "application/json"); self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    do_GET = do_POST = do_PUT = any
ThreadingHTTPServer(("0.0.0.0", 8000), H).serve_forever()
`;

async function serviceAccountToken(name: string, verbs: string[]): Promise<string> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
  await core.createNamespacedServiceAccount({ namespace: ns.name, body: { metadata: { name } } });
  await rbac.createNamespacedRole({
    namespace: ns.name,
    body: {
      metadata: { name },
      rules: [{ apiGroups: [GROUP], resources: [SANDBOX_PLURAL], verbs }],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace: ns.name,
    body: {
      metadata: { name },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
      subjects: [{ kind: "ServiceAccount", name, namespace: ns.name }],
    },
  });
  const tr = await core.createNamespacedServiceAccountToken({
    namespace: ns.name,
    name,
    body: { spec: { audiences: [], expirationSeconds: 3600 } } as k8s.AuthenticationV1TokenRequest,
  });
  return tr.status!.token!;
}

beforeAll(async () => {
  const engine = await ensureDockerd();
  buildAgent();
  ns = await testNamespace(kc, "gwh2");
  operator = await startDockerOperator({
    namespace: ns.name,
    user: "operator-1",
    engine,
    owner: OWNER,
    upstreamDns: "127.0.0.1",
  });
  const dir = mkdtempSync(join(tmpdir(), "gwh2-tls-"));
  execFileSync("openssl", [
    ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
    ...["-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "1"],
    ...["-subj", "/CN=gateway.test", "-addext", "subjectAltName=IP:127.0.0.1"],
  ]);
  ca = readFileSync(join(dir, "cert.pem"));
  const common = {
    kubeconfig: inject("kubeconfigPath"),
    keysDir: keyDir(),
    dockerHost: `unix://${(engine.modem as { socketPath?: string }).socketPath}`,
    logDir: mkdtempSync(join(tmpdir(), "gwh2-logs-")),
  };
  [tlsGw, plainGw] = await Promise.all([
    startGatewayProcess({
      ...common,
      name: "gateway-tls",
      tls: { cert: join(dir, "cert.pem"), key: join(dir, "key.pem") },
    }),
    // Small limits, to see them hold over HTTP/2 as over HTTP/1.1.
    startGatewayProcess({
      ...common,
      name: "gateway-h2c",
      extra: ["--max-upload-bytes=1048576", "--rate=20", "--burst=20"],
    }),
  ]);
  [runner, reader] = await Promise.all([
    serviceAccountToken("runner", ["get", "exec", "files", "connect"]),
    serviceAccountToken("reader", ["get"]),
  ]);
  await Sandbox.create(
    {
      image: SANDBOX_IMAGE,
      command: ["python3", "-c", ECHO],
      ports: [{ name: "http", port: 8000 }],
    },
    { kubeconfig: kc, namespace: ns.name, docker: engine, name: "box" },
  );
}, 600_000);

afterAll(async () => {
  await Promise.all([tlsGw?.stop(), plainGw?.stop()]);
  await operator?.stop();
  await removeOwnedBy(OWNER);
  await ns?.delete();
});

const connect = (gw: GatewayProcess) =>
  http2.connect(gw.url, gw.url.startsWith("https") ? { ca } : {});
const api = (name: string) => `/v1/namespaces/${ns.name}/sandboxes/${name}`;

/** One request on an HTTP/2 session: status, headers, body. */
function h2(
  session: http2.ClientHttp2Session,
  path: string,
  o: {
    method?: string;
    token?: string;
    body?: Buffer | string;
    headers?: Record<string, string>;
  } = {},
): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ":method": o.method ?? "GET",
      ":path": path,
      ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
      ...o.headers,
    });
    const chunks: Buffer[] = [];
    let status = 0;
    let headers: http2.IncomingHttpHeaders = {};
    req.on("response", (h) => {
      status = Number(h[":status"]);
      headers = h;
    });
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve({ status, headers, body: Buffer.concat(chunks) }));
    req.on("error", reject);
    req.end(o.body);
  });
}

const code = (r: { body: Buffer }) => JSON.parse(r.body.toString()).error.code as string;

/** `cat` over one HTTP/2 stream: a line comes back while the request is still open. */
async function duplexExec(session: http2.ClientHttp2Session, token: string) {
  const req = session.request({
    ":method": "POST",
    ":path": `${api("box")}/exec`,
    authorization: `Bearer ${token}`,
    "content-type": "application/octet-stream",
  });
  const dec = new FrameDecoder();
  let stdout = "";
  let echoed: () => void = () => {};
  const firstLine = new Promise<void>((r) => {
    echoed = r;
  });
  const exit = new Promise<{ exitCode: number | null }>((resolve, reject) => {
    req.on("data", (m: Buffer) => {
      for (const f of dec.push(m)) {
        if (f.type === FrameType.stdout) {
          stdout += f.payload;
          if (stdout.includes("\n")) echoed();
        }
        if (f.type === FrameType.exit) resolve(JSON.parse(f.payload.toString()));
        if (f.type === FrameType.error) reject(new Error(f.payload.toString()));
      }
    });
    req.on("error", reject);
  });
  req.write(
    encodeFrame(FrameType.spec, Buffer.from(JSON.stringify({ argv: ["cat"], stdin: true }))),
  );
  req.write(encodeFrame(FrameType.stdin, Buffer.from("ping\n")));
  await firstLine; // the answer to the first line, before the request body ends
  req.write(encodeFrame(FrameType.stdin, Buffer.from("pong\n")));
  req.end(encodeFrame(FrameType.stdinEof));
  return { exit: await exit, stdout };
}

describe("the gateway over HTTP/2", { timeout: 120_000 }, () => {
  it("TLS: ALPN h2 and HTTP/1.1 on the same port, the same authentication and authorization", async () => {
    const s = connect(tlsGw);
    const settings = new Promise<http2.Settings>((r) => s.once("remoteSettings", r));
    try {
      expect((await settings).maxConcurrentStreams).toBe(128);
      expect(s.alpnProtocol).toBe("h2");
      const none = await h2(s, api("box"));
      expect([none.status, code(none)]).toEqual([401, "NO_CREDENTIAL"]);
      expect(none.headers["www-authenticate"]).toBeDefined();
      const got = await h2(s, api("box"), { token: reader });
      expect(got.status).toBe(200);
      expect(JSON.parse(got.body.toString()).metadata.name).toBe("box");
      const denied = await h2(s, `${api("box")}/exec`, { method: "POST", token: reader, body: "" });
      expect([denied.status, code(denied)]).toEqual([403, "RBAC_DENIED"]);
    } finally {
      s.close();
    }
    const viaHttps = (ALPNProtocols?: string[]) =>
      new Promise<{ status: number; alpn: string | false | null }>((resolve, reject) =>
        https
          .get(
            `${tlsGw.url}${api("box")}`,
            {
              ca,
              agent: false, // a connection of its own: ALPN is per connection
              headers: { authorization: `Bearer ${reader}` },
              ...(ALPNProtocols ? { ALPNProtocols } : {}),
            },
            (res) => {
              res.resume();
              resolve({
                status: res.statusCode ?? 0,
                alpn: (res.socket as import("node:tls").TLSSocket).alpnProtocol,
              });
            },
          )
          .on("error", reject),
      );
    // A client offering http/1.1 gets it; one offering no ALPN at all is served HTTP/1.1 too.
    expect(await viaHttps(["http/1.1"])).toEqual({ status: 200, alpn: "http/1.1" });
    expect(await viaHttps()).toEqual({ status: 200, alpn: false });
  });

  it("h2c with prior knowledge and HTTP/1.1 on the same cleartext port", async () => {
    const s = connect(plainGw);
    try {
      const got = await h2(s, api("box"), { token: reader });
      expect(got.status).toBe(200);
    } finally {
      s.close();
    }
    const h1 = await fetch(`${plainGw.url}${api("box")}`, {
      headers: { authorization: `Bearer ${reader}` },
    });
    expect(h1.status).toBe(200);
  });

  it("exec streams full duplex on one HTTP/2 stream, over TLS and h2c", async () => {
    for (const gw of [tlsGw, plainGw]) {
      const s = connect(gw);
      try {
        expect(await duplexExec(s, runner)).toEqual({
          exit: expect.objectContaining({ exitCode: 0 }),
          stdout: "ping\npong\n",
        });
      } finally {
        s.close();
      }
    }
  });

  it("files and a declared port over HTTP/2: bodies intact, no pseudo-headers forwarded, X-Forwarded-* set", async () => {
    const s = connect(tlsGw);
    try {
      const data = randomBytes(5 << 20);
      const put = await h2(s, `${api("box")}/files/content?path=/tmp/h2.bin`, {
        method: "PUT",
        token: runner,
        body: data,
      });
      expect(put.status).toBeLessThan(300);
      const back = await h2(s, `${api("box")}/files/content?path=/tmp/h2.bin`, { token: runner });
      expect(back.body.equals(data)).toBe(true);

      const body = randomBytes(100_000);
      const echoed = await h2(s, `/sandboxes/${ns.name}/box/ports/8000/echo?q=1`, {
        method: "POST",
        token: runner,
        body,
        headers: { "x-app": "kept", "content-length": String(body.length) },
      });
      expect(echoed.status).toBe(200);
      const e = JSON.parse(echoed.body.toString());
      expect(e).toMatchObject({
        method: "POST",
        path: "/echo?q=1",
        bytes: body.length,
        sha256: createHash("sha256").update(body).digest("hex"),
      });
      expect(e.headers).toMatchObject({
        "x-app": "kept",
        "x-forwarded-proto": "https",
        "x-forwarded-host": tlsGw.url.replace("https://", ""),
      });
      expect(Object.keys(e.headers).filter((k) => k.startsWith(":"))).toEqual([]);
      expect(e.headers.authorization).toBeUndefined(); // the gateway's credential stays with it
    } finally {
      s.close();
    }
  });

  it("the same limits over HTTP/2: a body over the limit is cut off (413), a burst is rate limited (429)", async () => {
    const s = connect(plainGw);
    try {
      const big = await h2(s, `${api("box")}/files/content?path=/tmp/big.bin`, {
        method: "PUT",
        token: runner,
        body: randomBytes(2 << 20),
      });
      expect([big.status, code(big)]).toEqual([413, "BODY_TOO_LARGE"]);
      // Many streams on one connection count against the credential as many requests would.
      const burst = await Promise.all(
        Array.from({ length: 40 }, () => h2(s, api("box"), { token: reader })),
      );
      const limited = burst.filter((r) => r.status === 429);
      expect(limited.length).toBeGreaterThan(0);
      expect(limited[0]!.headers["retry-after"]).toBeDefined();
      expect(burst.every((r) => r.status === 200 || r.status === 429)).toBe(true);
    } finally {
      s.close();
    }
  });
});
