// The gateway's own cost, without Docker or a control plane: three processes,
// a keep-alive Node HTTP server (the "sandbox port"), the gateway in front of
// it (bench/gateway/micro-gateway.ts: scoped token, audit lines, metrics) and
// this load generator. Each case runs direct to the server and through the
// gateway's path route; the gateway's CPU is read from /proc/<pid>/stat
// (user + system time of the gateway process only, not wall clock), so
// CPU-µs per proxied request and requests per gateway CPU-second are the
// gateway's alone, whatever else runs on the machine.
//
//   npx tsx bench/gateway/micro.ts [--requests 20000] [--concurrency 1,10,100]
//     [--protocols h1,h2] [--floors http,undici,go] [--cpu-prof DIR [--cpu-prof-floors]]
//     [--out FILE]
// h1: HTTP/1.1 keep-alive (undici, one connection per concurrent request);
// h2: h2c with prior knowledge, all streams on one session. The gateway talks
// HTTP/1.1 keep-alive to the server in both cases.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import os, { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { Agent, request } from "undici";
import { generateKeyFiles, KeyStore, SIGNING_KEY_FILE } from "../../src/gateway/keys.js";
import { mintToken } from "../../src/gateway/tokens.js";
import { percentile } from "../support/stats.js";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "20000" },
    concurrency: { type: "string", default: "1,10,100" },
    protocols: { type: "string", default: "h1,h2" },
    "cpu-prof": { type: "string" },
    /** Profile the floors' processes too (into the --cpu-prof directory). */
    "cpu-prof-floors": { type: "boolean", default: false },
    /**
     * Floors measured beside the gateway: bare Node proxies (micro-gateway.ts),
     * http and undici, and go, Go's standard reverse proxy (goproxy/main.go).
     */
    floors: { type: "string", default: "http" },
    out: { type: "string" },
  },
});
const N = Number(values.requests);
const CONC = values.concurrency.split(",").map(Number);
const PROTOCOLS = values.protocols.split(",") as ("h1" | "h2")[];

/**
 * The sandbox's web server: Node's http, keep-alive, a 3-byte body; the same
 * handler over h2c on a second port, the direct baseline of the h2 cases.
 */
const SERVER = `
const h = (q, s) => { s.setHeader("content-length", "3"); s.end("ok\\n"); };
const a = require("http").createServer({ keepAliveTimeout: 60000 }, h).listen(0, "127.0.0.1", () => {
  const b = require("http2").createServer(h).listen(0, "127.0.0.1", () =>
    console.log(a.address().port + " " + b.address().port));
});`;

async function start(args: string[], env: NodeJS.ProcessEnv = {}, command = process.execPath) {
  const child = spawn(command, args, {
    env: { ...process.env, NODE_OPTIONS: "", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const line: string = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", resolve);
    child.once("exit", (c) => reject(new Error(`${args.join(" ")} exited ${c}`)));
  });
  const [port, h2Port] = line.split(" ").map(Number);
  return { child, port: port!, h2Port: h2Port ?? port! };
}

const stop = (c: ChildProcess) =>
  new Promise<void>((r) => {
    c.once("exit", () => r());
    c.kill("SIGTERM");
  });

const cpuSeconds = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, ticks of 1/100 s
};

const keysDir = mkdtempSync(join(tmpdir(), "gw-micro-"));
writeFileSync(join(keysDir, SIGNING_KEY_FILE), generateKeyFiles().privatePem);
const token = mintToken(new KeyStore(keysDir).keys.signing!, {
  ns: "ns",
  name: "box",
  uid: "u1",
  verbs: ["connect"],
  exp: Math.floor(Date.now() / 1000) + 3600,
  sub: "bench",
});
const upstream = await start(["-e", SERVER]);
process.on("exit", () => upstream.child.kill());
const gatewayArgs = (profile: boolean) => [
  ...(profile && values["cpu-prof"] ? ["--cpu-prof", `--cpu-prof-dir=${values["cpu-prof"]}`] : []),
  "--import",
  "tsx",
  join(import.meta.dirname, "micro-gateway.ts"),
];
const gatewayEnv = (bare?: string) => ({
  GW_UPSTREAM_PORT: String(upstream.port),
  GW_KEYS_DIR: keysDir,
  GW_AUDIT: join(keysDir, "audit.log"),
  ...(bare ? { GW_BARE: bare } : {}),
});
const gateway = await start(gatewayArgs(true), gatewayEnv());
process.on("exit", () => gateway.child.kill());
const FLOORS = values.floors ? values.floors.split(",") : [];
const floors: Record<string, Awaited<ReturnType<typeof start>>> = {};
for (const f of FLOORS) {
  floors[f] =
    f === "go"
      ? await start(["-upstream", `127.0.0.1:${upstream.port}`], {}, buildGoProxy())
      : await start(gatewayArgs(values["cpu-prof-floors"]), gatewayEnv(f));
  process.on("exit", () => floors[f]!.child.kill());
}
/**
 * The "go" floor: Go's standard reverse proxy (bench/gateway/goproxy), what the
 * anchor's router is built on, built once per Go version into the cache.
 */
function buildGoProxy(): string {
  const version = execFileSync("go", ["env", "GOVERSION"], { encoding: "utf8" }).trim();
  const out = join(os.homedir(), ".cache/sandbox-operator/bench", `goproxy-${version}`);
  execFileSync("go", ["build", "-o", out, "."], {
    cwd: join(import.meta.dirname, "goproxy"),
    env: { ...process.env, CGO_ENABLED: "0" },
    stdio: "inherit",
  });
  return out;
}
const PATH = "/sandboxes/ns/box/ports/8000/";
const auth = { authorization: `Bearer ${token}` };

interface Target {
  port: number;
  path: string;
  headers: Record<string, string>;
  pid?: number;
}

/** One request function per protocol and target, and its cleanup. */
function client(proto: "h1" | "h2", t: Target, conc: number) {
  if (proto === "h1") {
    const pool = new Agent({ connections: conc, pipelining: 1 });
    const url = `http://127.0.0.1:${t.port}${t.path}`;
    return {
      once: async () => {
        const r = await request(url, { dispatcher: pool, headers: t.headers });
        await r.body.dump();
        if (r.statusCode !== 200) throw new Error(`HTTP ${r.statusCode}`);
      },
      close: () => pool.close(),
    };
  }
  const session = http2.connect(`http://127.0.0.1:${t.port}`);
  session.on("error", () => {});
  const headers = { ":path": t.path, ...t.headers };
  return {
    once: () =>
      new Promise<void>((resolve, reject) => {
        const s = session.request(headers);
        let status = 0;
        s.on("response", (h) => {
          status = Number(h[":status"]);
        });
        s.on("data", () => {});
        s.on("end", () => (status === 200 ? resolve() : reject(new Error(`HTTP ${status}`))));
        s.on("error", reject);
        s.end();
      }),
    close: () => new Promise<void>((r) => session.close(() => r())),
  };
}

async function measure(proto: "h1" | "h2", t: Target, conc: number, n: number) {
  const c = client(proto, t, conc);
  for (let i = 0; i < Math.min(200, n); i++) await c.once(); // connections, JIT
  await Promise.all(Array.from({ length: conc }, () => c.once()));
  const lat: number[] = [];
  let next = 0;
  const cpu0 = t.pid ? cpuSeconds(t.pid) : 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (next++ < n) {
        const t = performance.now();
        await c.once();
        lat.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = t.pid ? cpuSeconds(t.pid) - cpu0 : 0;
  await c.close();
  return {
    p50: Number(percentile(lat, 50).toFixed(3)),
    p99: Number(percentile(lat, 99).toFixed(3)),
    rps: Math.round(n / seconds),
    ...(t.pid
      ? {
          cpuUsPerRequest: Math.round((cpu / n) * 1e6),
          requestsPerCpuSecond: Math.round(n / Math.max(0.01, cpu)),
        }
      : {}),
  };
}

const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  requests: N,
  machine: {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    shared: "other work may run on the same cores: see loadavg1 per case",
  },
  versions: {
    node: process.version,
    undici: JSON.parse(
      readFileSync(join(import.meta.dirname, "../../node_modules/undici/package.json"), "utf8"),
    ).version,
    commit: execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim(),
    gateway: "node --import tsx bench/gateway/micro-gateway.ts (sources, not the bundle)",
    ...(FLOORS.includes("go")
      ? { go: execFileSync("go", ["env", "GOVERSION"], { encoding: "utf8" }).trim() }
      : {}),
  },
  loadavg1Start: Number(os.loadavg()[0]!.toFixed(2)),
};
try {
  for (const proto of PROTOCOLS)
    for (const conc of CONC) {
      // Back to back, so direct, the floors and the gateway see the same load.
      const direct = await measure(
        proto,
        { port: proto === "h2" ? upstream.h2Port : upstream.port, path: "/", headers: {} },
        conc,
        N,
      );
      const floor: Record<string, unknown> = {};
      for (const f of FLOORS)
        floor[f] = await measure(
          proto,
          { port: floors[f]!.port, path: "/", headers: {}, pid: floors[f]!.child.pid! },
          conc,
          N,
        );
      const via = await measure(
        proto,
        { port: gateway.port, path: PATH, headers: auth, pid: gateway.child.pid! },
        conc,
        N,
      );
      const r = {
        direct,
        floor,
        gateway: via,
        addedP50Ms: Number((via.p50 - direct.p50).toFixed(3)),
        loadavg1: Number(os.loadavg()[0]!.toFixed(2)),
      };
      results[`${proto}-c${conc}`] = r;
      console.log(`${proto} c=${conc}`.padEnd(10), JSON.stringify(r));
    }
  results.gatewayPeakRssMiB = Math.round(
    Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${gateway.child.pid!}/status`, "utf8"))![1]) /
      1024,
  );
} finally {
  for (const f of Object.values(floors)) await stop(f.child);
  await stop(gateway.child);
  await stop(upstream.child);
}
results.loadavg1End = Number(os.loadavg()[0]!.toFixed(2));
if (values.out) writeFileSync(values.out, `${JSON.stringify(results, null, 2)}\n`);
