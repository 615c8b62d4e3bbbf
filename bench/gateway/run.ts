// Gateway benchmark (figures, not a timed test). One docker-backend sandbox
// (the real control plane, the operator, the agent), one gateway replica as a
// child process, and in the same run:
//   - exec `true` round trip through the gateway vs straight to the agent,
//     p50/p99 at concurrency 1 and 100;
//   - an HTTP GET to a declared port through the gateway (path routing) vs
//     straight to the published port, p50/p99 at concurrency 1 and 100;
//   - both also straight to the sidecar's address on the sandbox's bridge
//     network ("bridge"), the route the gateway itself takes to a local
//     daemon's sandboxes (--docker-route): the gateway's own cost, without
//     Docker's userland proxy on either side;
//   - the gateway's CPU seconds and RSS per 1,000 requests/s, and proxied
//     requests per CPU-second.
// The gateway runs from the bundle (`npm run build` first: dist/cli/main.js, as
// the image runs it), not through tsx. The machine is shared: each case runs
// in rounds alternating direct and gateway (the order flipped every round), so
// both see the same load, and the load average is recorded with every round.
// Prints the figures, writes bench/results/gateway.json (biome-formatted).
//
//   npm run build
//   flock /tmp/sbx-docker.lock npx tsx bench/gateway/run.ts [--requests 2000] [--rounds 4]
//     [--cpu-prof DIR]   the gateway writes a V8 CPU profile into DIR when it stops
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import os, { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Agent, request } from "undici";
import { Sandbox } from "../../packages/sdk/src/index.js";
import { AgentClient } from "../../src/dataplane/client.js";
import { dockerAgentEndpoint } from "../../src/dataplane/docker.js";
import { AGENT_PORT } from "../../src/dataplane/protocol.js";
import { buildAgent } from "../../test/support/agent.js";
import { startControlPlane } from "../../test/support/control-plane.js";
import {
  docker,
  ensureDockerd,
  labelled,
  OPERATOR_IMAGE,
  SANDBOX_IMAGE,
} from "../../test/support/docker.js";
import { keyDir, startGatewayProcess } from "../../test/support/gateway.js";
import { startOperatorWithKubeconfig } from "../../test/support/operator.js";
import { REPO_ROOT } from "../../test/support/paths.js";
import { writeResult } from "../support/results.js";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "2000" },
    rounds: { type: "string", default: "4" },
    "cpu-prof": { type: "string" },
  },
});
const N = Number(values.requests);
const ROUNDS = Number(values.rounds);
if (!existsSync(join(REPO_ROOT, "dist/cli/main.js")))
  throw new Error(
    "no dist/cli/main.js: run `npm run build` first (the gateway runs from the bundle)",
  );
const OWNER = `bench-gw-${process.pid}`;

const pct = (s: number[], p: number) => {
  const x = [...s].sort((a, b) => a - b);
  return Number(x[Math.min(x.length - 1, Math.floor((p / 100) * x.length))]!.toFixed(3));
};

type Side = "direct" | "bridge" | "gateway";

/** n calls of fn by `concurrency` workers: latencies and wall time. */
async function load(n: number, concurrency: number, fn: () => Promise<unknown>) {
  const lat: number[] = [];
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < n) {
        const t = performance.now();
        await fn();
        lat.push(performance.now() - t);
      }
    }),
  );
  return { lat, seconds: (performance.now() - start) / 1000 };
}

/**
 * The sandbox's web server: Node's http (in the sandbox image), keep-alive,
 * a 3-byte body in one write. Python's http.server answered in 29 ms p50 (two
 * sends per response, held by Nagle and delayed ACK): the direct baseline then
 * measured the workload, not the gateway.
 */
const WORKLOAD = [
  'const s = require("http").createServer({ keepAliveTimeout: 60000 }, (q, r) => {',
  '  r.setHeader("content-length", "3"); r.end("ok\\n");',
  "});",
  "s.maxConnections = 4096;",
  's.listen({ port: 8000, host: "0.0.0.0", backlog: 1024 });',
].join("\n");

const loadavg1 = () => Number(os.loadavg()[0]!.toFixed(2));
const cpuSeconds = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks of 1/100 s
};
const rssMiB = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
const hwmMiB = (pid: number) =>
  Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;

const cp = await startControlPlane({ crds: true });
const engine = await ensureDockerd();
buildAgent();
const kc = cp.kubeConfig();
const ns = "bench-gw";
const core = await import("@kubernetes/client-node");
await kc.makeApiClient(core.CoreV1Api).createNamespace({ body: { metadata: { name: ns } } });
const operator = await startOperatorWithKubeconfig(cp.kubeconfigPath, {
  namespace: ns,
  defaultBackend: "docker",
  egressImage: OPERATOR_IMAGE,
  docker: {
    client: engine,
    settings: { owner: OWNER, upstreamDns: "127.0.0.1", publishAddress: "127.0.0.1" },
    sweepIntervalMs: 5000,
  },
});
const gw = await startGatewayProcess({
  name: "bench-gateway",
  kubeconfig: cp.kubeconfigPath,
  keysDir: keyDir(),
  dockerHost: `unix://${(engine.modem as { socketPath?: string }).socketPath}`,
  logDir: mkdtempSync(join(tmpdir(), "bench-gw-")),
  bundle: true,
  ...(values["cpu-prof"]
    ? { nodeOptions: ["--cpu-prof", `--cpu-prof-dir=${values["cpu-prof"]}`] }
    : {}),
  // Audit lines on (info, as deployed): their cost is the gateway's cost.
  extra: [
    "--rate=100000",
    "--burst=100000",
    "--sandbox-rate=100000",
    "--max-concurrent=1000",
    "--max-concurrent-per-sandbox=1000",
  ],
});
const git = (args: string[]) =>
  execFileSync("git", args, { cwd: REPO_ROOT, encoding: "utf8" }).trim();
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  requests: N,
  rounds: ROUNDS,
  machine: {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    shared: "other helpers build and test on the same cores; see loadavg1 per round",
  },
  versions: {
    node: process.version,
    gateway: "node dist/cli/main.js gateway (esbuild bundle)",
    commit: git(["rev-parse", "--short", "HEAD"]),
    docker: (await engine.version()).Version,
    sandboxImage: SANDBOX_IMAGE,
    workload: "node:http in the sandbox image, HTTP/1.1 keep-alive, 3-byte body",
  },
};
try {
  const box = await Sandbox.create(
    {
      image: SANDBOX_IMAGE,
      // A deep accept queue: at concurrency 100 the direct side must not be
      // the one dropping connections.
      command: ["node", "-e", WORKLOAD],
      ports: [{ name: "http", port: 8000 }],
    },
    { kubeconfig: kc, namespace: ns, docker: engine, name: "box" },
  );
  const minted = await request(`${gw.url}/v1/namespaces/${ns}/sandboxes/box/tokens`, {
    method: "POST",
    headers: { authorization: `Bearer ${cp.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ verbs: ["exec", "connect"], ttlSeconds: 3600 }),
  });
  const { token } = (await minted.body.json()) as { token: string };
  const ep = await dockerAgentEndpoint(engine, { namespace: ns, name: "box" });
  const direct = new AgentClient(ep, { maxSockets: 200 });
  const bridgeIp = (await box.refresh()).status!.ip!;
  const bridge = new AgentClient({ ...ep, host: bridgeIp, port: AGENT_PORT }, { maxSockets: 200 });
  const u = new URL(gw.url);
  const via = new AgentClient(
    {
      host: u.hostname,
      port: Number(u.port),
      token,
      basePath: `/v1/namespaces/${ns}/sandboxes/box`,
    },
    { maxSockets: 200 },
  );
  await eventuallyHttp(`${gw.url}/sandboxes/${ns}/box/ports/8000/`, token);
  const port = (await box.refresh()).status!.endpoints!.find((e) => e.name === "http")!;
  const pool = new Agent({ connections: 200, pipelining: 1 });
  const get =
    (url: string, headers: Record<string, string> = {}) =>
    async () => {
      const r = await request(url, { dispatcher: pool, headers });
      await r.body.dump();
      if (r.statusCode !== 200) throw new Error(`HTTP ${r.statusCode}`);
    };
  const httpDirect = get(`http://${port.host}:${port.port}/`);
  const httpBridge = get(`http://${bridgeIp}:8000/`);
  const httpVia = get(`${gw.url}/sandboxes/${ns}/box/ports/8000/`, {
    authorization: `Bearer ${token}`,
  });
  const execOnce = (c: AgentClient) => async () => {
    const r = await c.exec(["true"]);
    if (r.exitCode !== 0) throw new Error("exec failed");
  };

  const pid = gw.child.pid!;
  for (const fn of [
    execOnce(direct),
    execOnce(via),
    execOnce(bridge),
    httpDirect,
    httpVia,
    httpBridge,
  ])
    for (let i = 0; i < 50; i++) await fn(); // warm: connections, JIT
  /**
   * n calls of each side at `conc`, in ROUNDS rounds alternating which side
   * goes first, so both see the same load on the shared machine.
   */
  const compare = async (
    label: string,
    n: number,
    conc: number,
    sides: Record<Side, () => Promise<unknown>>,
  ) => {
    const acc = {
      direct: { lat: [] as number[], seconds: 0, loadavg1: [] as number[] },
      bridge: { lat: [] as number[], seconds: 0, loadavg1: [] as number[] },
      gateway: { lat: [] as number[], seconds: 0, loadavg1: [] as number[], cpu: 0 },
    };
    const sideNames: Side[] = ["direct", "bridge", "gateway"];
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? sideNames : [...sideNames].reverse();
      for (const side of order) {
        const cpu0 = cpuSeconds(pid);
        acc[side].loadavg1.push(loadavg1());
        const x = await load(Math.ceil(n / ROUNDS), conc, sides[side]);
        acc[side].lat.push(...x.lat);
        acc[side].seconds += x.seconds;
        if (side === "gateway") acc.gateway.cpu += cpuSeconds(pid) - cpu0;
      }
    }
    const sum = (a: { lat: number[]; seconds: number; loadavg1: number[] }) => ({
      p50: pct(a.lat, 50),
      p99: pct(a.lat, 99),
      rps: Math.round(a.lat.length / a.seconds),
      requests: a.lat.length,
      loadavg1: a.loadavg1,
    });
    const out = {
      direct: sum(acc.direct),
      bridge: sum(acc.bridge),
      gateway: {
        ...sum(acc.gateway),
        gatewayCpuSeconds: Number(acc.gateway.cpu.toFixed(2)),
        gatewayRssMiB: Math.round(rssMiB(pid)),
      },
      addedP50Ms: Number((pct(acc.gateway.lat, 50) - pct(acc.direct.lat, 50)).toFixed(3)),
      /** Over the bridge route, which the gateway itself takes: its own cost. */
      addedOverBridgeP50Ms: Number((pct(acc.gateway.lat, 50) - pct(acc.bridge.lat, 50)).toFixed(3)),
    };
    console.log(label.padEnd(12), JSON.stringify(out));
    return out;
  };
  const execN = Math.max(200, Math.floor(N / 4));
  const execSides = { direct: execOnce(direct), bridge: execOnce(bridge), gateway: execOnce(via) };
  const httpSides = { direct: httpDirect, bridge: httpBridge, gateway: httpVia };
  results.exec = {
    c1: await compare("exec c=1", execN, 1, execSides),
    c100: await compare("exec c=100", execN, 100, execSides),
  };
  results.http = {
    c1: await compare("http c=1", N, 1, httpSides),
    c10: await compare("http c=10", N, 10, httpSides),
    c100: await compare("http c=100", N, 100, httpSides),
  };
  type Case = {
    addedP50Ms: number;
    addedOverBridgeP50Ms: number;
    gateway: { requests: number; gatewayCpuSeconds: number };
  };
  const h = results.http as Record<string, Case>;
  const e = results.exec as Record<string, Case>;
  const g100 = h.c100!.gateway;
  results.summary = {
    execAddedP50Ms: e.c1!.addedP50Ms,
    httpAddedP50Ms: h.c1!.addedP50Ms,
    execAddedOverBridgeP50Ms: e.c1!.addedOverBridgeP50Ms,
    httpAddedOverBridgeP50Ms: h.c1!.addedOverBridgeP50Ms,
    /** Proxied HTTP requests per second of gateway CPU (the goal: >= 5,000 per core). */
    httpRequestsPerCpuSecond: Math.round(g100.requests / Math.max(0.01, g100.gatewayCpuSeconds)),
    /** CPU cores the gateway needs per 1,000 proxied requests/s. */
    gatewayCoresPer1000Rps: Number(((g100.gatewayCpuSeconds / g100.requests) * 1000).toFixed(3)),
    gatewayRssMiB: Math.round(rssMiB(pid)),
    gatewayPeakRssMiB: Math.round(hwmMiB(pid)),
  };
  console.log(JSON.stringify(results.summary, null, 2));
  const out = join(REPO_ROOT, "bench/results/gateway.json");
  writeResult(out, results);
  direct.close();
  bridge.close();
  via.close();
  await pool.close();
} finally {
  await gw.stop();
  await operator.stop();
  for (const kind of ["container", "network", "volume"] as const) {
    for (const name of await labelled(kind, `sandboxing.dev/owner=${OWNER}`)) {
      await docker(kind === "container" ? ["rm", "-f", "-v", name] : [kind, "rm", name]);
    }
  }
  await cp.stop();
}
// Done and cleaned up; a handle left open by a client (not tracked down) kept
// the process, and with it the docker lock, alive for minutes after its figures.
process.exit(0);

async function eventuallyHttp(url: string, token: string) {
  for (let i = 0; i < 200; i++) {
    const r = await request(url, { headers: { authorization: `Bearer ${token}` } }).catch(
      () => undefined,
    );
    await r?.body.dump();
    if (r?.statusCode === 200) return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`${url} never answered 200`);
}
