// Egress sidecar benchmark, loopback only. Prints the figures and writes
// bench/results/egress.json. Goals (not assertions): proxied bulk HTTPS
// throughput >= 0.9x direct, added latency per new connection p50 <= 1 ms,
// sidecar RSS <= 40 MiB idle.
//
// Memory is read from the production executable (`dist/cli/main.js egress`,
// as the image runs it): how it loads its modules decides its RSS, so a
// separate entry would understate it. Throughput and latency use a benchmark
// entry of the same sidecar code, which can aim the transparent listeners at
// the local server without an iptables redirect.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { startAuthoritativeDns } from "../../test/egress/support/authoritative-dns.js";
import { makeTestCert } from "../../test/egress/support/certs.js";
import { httpsServer, listen } from "../../test/egress/support/web-servers.js";
import { freePort, waitForHttpOk } from "../../test/support/processes.js";
import { buildSidecar } from "./build.js";
import { fetchBytes, type Route, routes } from "./clients.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "../..");
const BULK_BYTES = 256 * 1024 * 1024;
const BULK_RUNS = 3;
const LATENCY_CONNECTIONS = 300;
const CONCURRENT = 100;

const MiB = 1024 * 1024;
const round = (n: number, digits = 2) => Number(n.toFixed(digits));

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
const median = (xs: number[]) =>
  percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return round(Number(m![1]) / 1024, 1);
}

async function startSidecarProcess(
  script: string,
  opts: unknown,
): Promise<{ child: ChildProcess; ports: Record<string, number> }> {
  // The decision log goes to /dev/null: written as in production, read by no one.
  const devNull = openSync("/dev/null", "w");
  const child = spawn(process.execPath, [script, JSON.stringify(opts)], {
    stdio: ["ignore", devNull, "inherit", "pipe"],
  });
  const ready = child.stdio[3] as Readable;
  const ports = await new Promise<Record<string, number>>((resolve, reject) => {
    let buf = "";
    ready.on("data", (d: Buffer) => {
      buf += d.toString();
      const line = buf.split("\n").find((l) => l.includes('"event":"ready"'));
      if (line) resolve(JSON.parse(line).ports);
    });
    child.once("exit", (code) => reject(new Error(`sidecar exited with ${code}`)));
  });
  return { child, ports };
}

/**
 * Bulk download rate (MiB/s) per route, median of BULK_RUNS. Routes take turns
 * within each run so that drift on a shared machine hits them alike.
 */
async function throughput(all: Route[]): Promise<number[]> {
  const rates: number[][] = all.map(() => []);
  for (let run = 0; run < BULK_RUNS; run++) {
    for (const [i, route] of all.entries()) {
      const tls = await route.open();
      const start = process.hrtime.bigint();
      const bytes = await fetchBytes(tls, `/bytes/${BULK_BYTES}`);
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      if (bytes !== BULK_BYTES) throw new Error(`${route.name}: got ${bytes} bytes`);
      rates[i]!.push(bytes / MiB / seconds);
    }
  }
  return rates.map((r) => round(median(r), 1));
}

interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
}

/**
 * Time from nothing to a completed small HTTPS exchange on a new connection
 * (TCP, CONNECT if proxied, TLS handshake, one request), per route, interleaved.
 */
async function newConnectionLatency(all: Route[]): Promise<Percentiles[]> {
  const samples: number[][] = all.map(() => []);
  for (let n = 0; n < LATENCY_CONNECTIONS; n++) {
    for (const [i, route] of all.entries()) {
      const start = process.hrtime.bigint();
      await fetchBytes(await route.open(), "/bytes/100");
      samples[i]!.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
  }
  return samples.map((xs) => {
    xs.sort((a, b) => a - b);
    return {
      p50: round(percentile(xs, 50), 3),
      p90: round(percentile(xs, 90), 3),
      p99: round(percentile(xs, 99), 3),
    };
  });
}

interface CliSidecar {
  child: ChildProcess;
  proxyPort: number;
  close(): void;
}

/** The production sidecar command (built by `npm run bench:egress`), ready. */
async function startCliSidecar(upstreamDns: string): Promise<CliSidecar> {
  const dir = mkdtempSync(join(tmpdir(), "bench-egress-"));
  const policyFile = join(dir, "policy.json");
  writeFileSync(
    policyFile,
    // Loopback stands in for the internet here; as a reserved range it needs its own rule.
    JSON.stringify({
      defaultAction: "deny",
      rules: [
        { action: "allow", target: "bench.test" },
        { action: "allow", target: "127.0.0.1/32" },
      ],
    }),
  );
  const [proxyPort, dnsPort, httpPort, tlsPort, healthPort, metricsPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const flags = {
    "policy-file": policyFile,
    sandbox: "bench/egress",
    "upstream-dns": upstreamDns,
    "proxy-port": proxyPort,
    "dns-port": dnsPort,
    "http-port": httpPort,
    "tls-port": tlsPort,
    "health-port": healthPort,
    "metrics-port": metricsPort,
  };
  const args = Object.entries(flags).flatMap(([k, v]) => [`--${k}`, String(v)]);
  const devNull = openSync("/dev/null", "w");
  const child = spawn(process.execPath, [join(REPO, "dist/cli/main.js"), "egress", ...args], {
    stdio: ["ignore", devNull, "inherit"],
  });
  const close = () => {
    child.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForHttpOk(child, `http://127.0.0.1:${healthPort}/readyz`, 10_000);
  } catch (err) {
    close();
    throw err;
  }
  return { child, proxyPort: proxyPort!, close };
}

/** RSS of the production sidecar: idle, holding CONCURRENT tunnels, after bulk transfers. */
async function cliSidecarRss(ca: Buffer, serverPort: number, upstreamDns: string) {
  const cli = await startCliSidecar(upstreamDns);
  const pid = cli.child.pid!;
  try {
    await new Promise((r) => setTimeout(r, 500));
    const idle = rssMiB(pid);
    const [, proxy] = routes(ca, { server: serverPort, proxy: cli.proxyPort, tls: 0 });
    for (let i = 0; i < 20; i++) await fetchBytes(await proxy!.open(), "/bytes/100");
    const tunnels = await Promise.all(Array.from({ length: CONCURRENT }, () => proxy!.open()));
    await new Promise((r) => setTimeout(r, 300));
    const atConcurrent = rssMiB(pid);
    for (const t of tunnels) t.destroy();
    for (let run = 0; run < BULK_RUNS; run++) {
      await fetchBytes(await proxy!.open(), `/bytes/${BULK_BYTES}`);
    }
    return { idle, atConcurrent, afterBulk: rssMiB(pid) };
  } finally {
    cli.close();
  }
}

/** RSS of an empty node process on this machine: the floor under any sidecar written in Node. */
async function nodeBaselineRss(): Promise<number> {
  const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 5000)"], { stdio: "ignore" });
  await new Promise((r) => setTimeout(r, 500));
  const rss = rssMiB(child.pid!);
  child.kill();
  return rss;
}

async function main() {
  const cert = makeTestCert(["bench.test"]);
  const server = httpsServer(cert);
  const serverPort = await listen(server, 0, "127.0.0.1");
  const dns = await startAuthoritativeDns({
    host: "127.0.0.1",
    port: 0,
    zone: { "bench.test": { A: ["127.0.0.1"] } },
  });

  const script = buildSidecar(REPO);
  const { child, ports } = await startSidecarProcess(script, {
    sandboxId: "bench/egress",
    policy: { defaultAction: "deny", rules: [{ action: "allow", target: "bench.test" }] },
    upstreamDns: `127.0.0.1:${dns.port}`,
    ports: { dns: 0, http: 0, tls: 0, proxy: 0 },
    health: false,
    metrics: false,
    destinationPorts: { http: 80, tls: serverPort },
    reservedRanges: [], // loopback stands in for the internet here
  });
  try {
    const rss = await cliSidecarRss(cert.cert, serverPort, `127.0.0.1:${dns.port}`);
    const baselineRss = await nodeBaselineRss();
    const [direct, proxy, transparent] = routes(cert.cert, {
      server: serverPort,
      proxy: ports.proxy!,
      tls: ports.tls!,
    });

    // Warm up every path (JIT, DNS cache) before measuring.
    for (const r of [direct!, proxy!, transparent!])
      for (let i = 0; i < 20; i++) await fetchBytes(await r.open(), "/bytes/100");

    const [l0, l1, l2] = await newConnectionLatency([direct!, proxy!, transparent!]);
    const latency = { direct: l0!, explicitProxy: l1!, transparentTls: l2! };
    const [t0, t1, t2] = await throughput([direct!, proxy!, transparent!]);
    const bulk = { directMiBps: t0!, explicitProxyMiBps: t1!, transparentTlsMiBps: t2! };

    const results = {
      date: new Date().toISOString(),
      node: process.version,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      setup: {
        bulkBytes: BULK_BYTES,
        bulkRuns: BULK_RUNS,
        latencyConnections: LATENCY_CONNECTIONS,
        concurrentConnections: CONCURRENT,
      },
      throughput: {
        ...bulk,
        explicitProxyRatio: round(bulk.explicitProxyMiBps / bulk.directMiBps, 3),
        transparentTlsRatio: round(bulk.transparentTlsMiBps / bulk.directMiBps, 3),
      },
      newConnectionMs: {
        ...latency,
        addedP50ExplicitProxy: round(latency.explicitProxy.p50 - latency.direct.p50, 3),
        addedP50TransparentTls: round(latency.transparentTls.p50 - latency.direct.p50, 3),
      },
      sidecarRssMiB: {
        measured: "dist/cli/main.js egress (the production command)",
        idle: rss.idle,
        [`at${CONCURRENT}Connections`]: rss.atConcurrent,
        afterBulkTransfers: rss.afterBulk,
        nodeBaseline: baselineRss,
      },
      goals: { throughputRatio: 0.9, addedLatencyP50Ms: 1, idleRssMiB: 40 },
    };
    mkdirSync(join(REPO, "bench/results"), { recursive: true });
    writeFileSync(join(REPO, "bench/results/egress.json"), `${JSON.stringify(results, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  } finally {
    child.kill("SIGTERM");
    server.close();
    await dns.close();
  }
}

await main();
process.exit(0);
