// The gateway's own cost, without Docker or a control plane: an in-process
// Gateway (scoped tokens verified locally, a fixed directory entry) proxying
// HTTP to a local Node server, vs the server directly. CPU per request of this
// process (gateway + client + server) minus the direct run's is the gateway's.
//
//   npx tsx bench/gateway/micro.ts [-- --requests 20000 --concurrency 10]
import { mkdtempSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Registry } from "prom-client";
import { Agent, request } from "undici";
import { Auth } from "../../src/gateway/auth.js";
import type { Directory, SandboxObject } from "../../src/gateway/directory.js";
import { generateKeyFiles, KeyStore, SIGNING_KEY_FILE } from "../../src/gateway/keys.js";
import { gatewayMetrics } from "../../src/gateway/metrics.js";
import { Gateway } from "../../src/gateway/server.js";
import { mintToken } from "../../src/gateway/tokens.js";
import { createLogger } from "../../src/observability/logger.js";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "20000" },
    concurrency: { type: "string", default: "10" },
  },
});
const N = Number(values.requests);
const C = Number(values.concurrency);

const upstream = http.createServer((_req, res) => res.end("ok"));
await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
const upPort = (upstream.address() as { port: number }).port;

const dir = mkdtempSync(join(tmpdir(), "gw-micro-"));
writeFileSync(join(dir, SIGNING_KEY_FILE), generateKeyFiles().privatePem);
const keys = new KeyStore(dir);
const sandbox = {
  metadata: { name: "box", namespace: "ns", uid: "u1" },
  spec: { ports: [{ name: "http", port: 8000, visibility: "private" }] },
  status: { backend: "docker", endpoints: [{ name: "http", host: "127.0.0.1", port: upPort }] },
} as unknown as SandboxObject;
const reach = {
  port: () => ({ host: "127.0.0.1", port: upPort }),
};
const directory = { get: () => sandbox, reach: () => reach } as unknown as Directory;
const log = createLogger({ destination: (await import("node:fs")).createWriteStream("/dev/null") });
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
const gw = await gateway.listen(0, "127.0.0.1");
const token = mintToken(keys.keys.signing!, {
  ns: "ns",
  name: "box",
  uid: "u1",
  verbs: ["connect"],
  exp: Math.floor(Date.now() / 1000) + 3600,
  sub: "bench",
});

const pool = new Agent({ connections: C });
async function run(url: string, headers: Record<string, string>) {
  const lat: number[] = [];
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (next++ < N) {
        const t = performance.now();
        const r = await request(url, { dispatcher: pool, headers });
        await r.body.dump();
        if (r.statusCode !== 200) throw new Error(`HTTP ${r.statusCode}`);
        lat.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  lat.sort((a, b) => a - b);
  return {
    rps: Math.round(N / seconds),
    p50: Number(lat[Math.floor(lat.length / 2)]!.toFixed(3)),
    p99: Number(lat[Math.floor(lat.length * 0.99)]!.toFixed(3)),
    cpuUsPerRequest: Math.round((cpu.user + cpu.system) / N),
  };
}

await run(`http://127.0.0.1:${upPort}/`, {}); // warm-up
const direct = await run(`http://127.0.0.1:${upPort}/`, {});
const via = await run(`http://127.0.0.1:${gw.port}/sandboxes/ns/box/ports/8000/`, {
  authorization: `Bearer ${token}`,
});
const gatewayCpuUs = via.cpuUsPerRequest - direct.cpuUsPerRequest;
const out = {
  requests: N,
  concurrency: C,
  direct,
  gateway: via,
  gatewayCpuUsPerRequest: gatewayCpuUs,
  proxiedRequestsPerCpuSecond: Math.round(1e6 / gatewayCpuUs),
};
console.log(JSON.stringify(out, null, 2));
await gateway.close();
await pool.close();
upstream.close();
