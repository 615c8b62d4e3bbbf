// The gateway process of bench/gateway/micro.ts: a real Gateway (scoped tokens
// verified locally, audit lines written, metrics counted) in front of one
// fixed sandbox whose declared port 8000 is the upstream given in the
// environment. Prints its port on stdout and serves until SIGTERM (so
// --cpu-prof writes its profile).
//
//   GW_UPSTREAM_PORT=<port> GW_KEYS_DIR=<dir> GW_AUDIT=<file> node --import tsx bench/gateway/micro-gateway.ts
import http from "node:http";
import { Registry } from "prom-client";
import { Pool } from "undici";
import { Auth } from "../../src/gateway/auth.js";
import type { Directory, SandboxObject } from "../../src/gateway/directory.js";
import { KeyStore } from "../../src/gateway/keys.js";
import { Listener } from "../../src/gateway/listener.js";
import { gatewayMetrics } from "../../src/gateway/metrics.js";
import { Gateway } from "../../src/gateway/server.js";
import { createLogger } from "../../src/observability/logger.js";

const upPort = Number(process.env.GW_UPSTREAM_PORT);
const keys = new KeyStore(process.env.GW_KEYS_DIR!);
const sandbox = {
  metadata: { name: "box", namespace: "ns", uid: "u1" },
  spec: { ports: [{ name: "http", port: 8000, visibility: "private" }] },
  status: { backend: "docker", endpoints: [{ name: "http", host: "127.0.0.1", port: upPort }] },
} as unknown as SandboxObject;
const reach = { port: () => ({ host: "127.0.0.1", port: upPort }) };
const directory = { get: () => sandbox, reach: () => reach } as unknown as Directory;
// Audit lines at info into a file, batched as the gateway writes them to
// stdout in production (src/cli/gateway.ts).
const log = createLogger({
  level: process.env.GW_LOG_LEVEL ?? "info",
  batch: { flushMs: 200, file: process.env.GW_AUDIT ?? "/dev/null" },
});
const gateway = new Gateway({
  auth: new Auth({ kubeConfig: undefined as never, keys }),
  keys,
  directory,
  log,
  metrics: gatewayMetrics(new Registry()),
  maxTokenTtlSeconds: 3600,
  limits: {
    perCredential: { rps: 1e9, burst: 1e9 },
    perSandbox: { rps: 1e9, burst: 1e9 },
    concurrentPerCredential: 1e6,
    concurrentPerSandbox: 1e6,
  },
  ready: () => undefined,
});
/**
 * GW_BARE=http: the floor of this design instead, a proxy with nothing but
 * Node's http server, a keep-alive agent and a pipe (no routing, auth,
 * limits, audit or metrics), to tell the gateway's own work from Node's.
 */
const bare = () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4096 });
  // The gateway's listener (HTTP/1.1 and h2c on one port), so both protocols compare.
  const listener = new Listener({
    onRequest: (req, res) => {
      const up = http.request(
        { agent, host: "127.0.0.1", port: upPort, method: req.method, path: "/", headers: {} },
        (ur) => {
          res.writeHead(ur.statusCode ?? 502, { "content-length": ur.headers["content-length"] });
          ur.pipe(res);
        },
      );
      up.end();
    },
    onUpgrade: (_req, socket) => socket.destroy(),
  });
  return listener.listen(0, "127.0.0.1");
};
/** GW_BARE=undici: the same floor with undici's client for the upstream leg. */
const bareUndici = () => {
  const pool = new Pool(`http://127.0.0.1:${upPort}`, { connections: 4096, pipelining: 1 });
  const listener = new Listener({
    onRequest: (_req, res) => {
      pool.stream(
        { method: "GET", path: "/", headers: {}, opaque: res },
        ({ statusCode, headers, opaque }) => {
          const r = opaque as http.ServerResponse;
          r.writeHead(statusCode, { "content-length": headers["content-length"] as string });
          return r;
        },
        (err) => {
          if (err) res.destroy();
        },
      );
    },
    onUpgrade: (_req, socket) => socket.destroy(),
  });
  return listener.listen(0, "127.0.0.1");
};
const { port } =
  process.env.GW_BARE === "undici"
    ? await bareUndici()
    : process.env.GW_BARE
      ? await bare()
      : await gateway.listen(0, "127.0.0.1");
process.stdout.write(`${port}\n`);
process.on("SIGTERM", () => {
  void gateway.close().then(() => process.exit(0));
});
