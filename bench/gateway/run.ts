// Gateway benchmark (figures, not a timed test). One docker-backend sandbox
// (the real control plane, the operator, the agent), one gateway replica as a
// child process, and in the same run:
//   - exec `true` round trip through the gateway vs straight to the agent,
//     p50/p99 at concurrency 1 and 100;
//   - an HTTP GET to a declared port through the gateway (path routing) vs
//     straight to the published port, p50/p99 at concurrency 1 and 100;
//   - the gateway's CPU seconds and RSS per 1,000 requests/s, and proxied
//     requests per CPU-second.
// Prints the figures, writes bench/results/gateway.json.
//
//   flock /tmp/sbx-docker.lock npx tsx bench/gateway/run.ts [-- --requests 2000]
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Agent, request } from "undici";
import { Sandbox } from "../../packages/sdk/src/index.js";
import { AgentClient } from "../../src/dataplane/client.js";
import { dockerAgentEndpoint } from "../../src/dataplane/docker.js";
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

const { values } = parseArgs({ options: { requests: { type: "string", default: "2000" } } });
const N = Number(values.requests);
const OWNER = `bench-gw-${process.pid}`;

const pct = (s: number[], p: number) => {
  const x = [...s].sort((a, b) => a - b);
  return Number(x[Math.min(x.length - 1, Math.floor((p / 100) * x.length))]!.toFixed(3));
};

/** n calls of fn by `concurrency` workers: latencies and wall time. */
async function load(n: number, concurrency: number, fn: () => Promise<unknown>) {
  for (let i = 0; i < Math.min(50, n); i++) await fn();
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
  const seconds = (performance.now() - start) / 1000;
  return { p50: pct(lat, 50), p99: pct(lat, 99), rps: Math.round(n / seconds), seconds };
}

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
  extra: [
    "--log-level=warn",
    "--rate=100000",
    "--burst=100000",
    "--sandbox-rate=100000",
    "--max-concurrent=1000",
    "--max-concurrent-per-sandbox=1000",
  ],
});
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  requests: N,
  cpus: (await import("node:os")).cpus().length,
};
try {
  const box = await Sandbox.create(
    {
      image: SANDBOX_IMAGE,
      command: ["python3", "-m", "http.server", "8000", "--directory", "/tmp"],
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
  const httpVia = get(`${gw.url}/sandboxes/${ns}/box/ports/8000/`, {
    authorization: `Bearer ${token}`,
  });
  const execOnce = (c: AgentClient) => async () => {
    const r = await c.exec(["true"]);
    if (r.exitCode !== 0) throw new Error("exec failed");
  };

  const pid = gw.child.pid!;
  const phase = async (label: string, n: number, conc: number, fn: () => Promise<unknown>) => {
    const cpu0 = cpuSeconds(pid);
    const r = await load(n, conc, fn);
    const cpu = cpuSeconds(pid) - cpu0;
    const out = {
      ...r,
      gatewayCpuSeconds: Number(cpu.toFixed(2)),
      gatewayRssMiB: Math.round(rssMiB(pid)),
    };
    console.log(label.padEnd(28), JSON.stringify(out));
    return out;
  };
  const execN = Math.max(200, Math.floor(N / 4));
  results.exec = {
    c1: {
      direct: await phase("exec direct c=1", execN, 1, execOnce(direct)),
      gateway: await phase("exec gateway c=1", execN, 1, execOnce(via)),
    },
    c100: {
      direct: await phase("exec direct c=100", execN, 100, execOnce(direct)),
      gateway: await phase("exec gateway c=100", execN, 100, execOnce(via)),
    },
  };
  results.http = {
    c1: {
      direct: await phase("http direct c=1", N, 1, httpDirect),
      gateway: await phase("http gateway c=1", N, 1, httpVia),
    },
    c100: {
      direct: await phase("http direct c=100", N, 100, httpDirect),
      gateway: await phase("http gateway c=100", N, 100, httpVia),
    },
  };
  const h = results.http as Record<
    string,
    Record<string, { p50: number; rps: number; gatewayCpuSeconds: number }>
  >;
  const e = results.exec as typeof h;
  const g100 = h.c100!.gateway!;
  results.summary = {
    execAddedP50Ms: Number((e.c1!.gateway!.p50 - e.c1!.direct!.p50).toFixed(3)),
    httpAddedP50Ms: Number((h.c1!.gateway!.p50 - h.c1!.direct!.p50).toFixed(3)),
    /** Proxied HTTP requests per second of gateway CPU (the goal: >= 5,000 per core). */
    httpRequestsPerCpuSecond: Math.round(N / Math.max(0.01, g100.gatewayCpuSeconds)),
    /** CPU cores the gateway needs per 1,000 proxied requests/s. */
    gatewayCoresPer1000Rps: Number(((g100.gatewayCpuSeconds / N) * 1000).toFixed(3)),
    gatewayRssMiB: Math.round(rssMiB(pid)),
    gatewayPeakRssMiB: Math.round(hwmMiB(pid)),
  };
  console.log(JSON.stringify(results.summary, null, 2));
  writeFileSync(
    join(REPO_ROOT, "bench/results/gateway.json"),
    `${JSON.stringify(results, null, 2)}\n`,
  );
  direct.close();
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
