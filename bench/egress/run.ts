// Egress sidecar benchmark, old against new in one run: the TypeScript sidecar
// (`sandbox-operator egress`, node) and the Go one (`sandbox-egress egress`,
// what both backends run). Loopback only, plus one throwaway network namespace
// for the start-up with the lockdown. Prints the figures and writes
// bench/results/egress.json. Goals (not assertions): sidecar RSS <= 10 MiB
// idle, ready <= 50 ms after start, proxied bulk HTTPS >= 0.9x direct, added
// latency per new connection p50 <= 1 ms.
//
// Memory and start-up are read from the production executables as the images
// run them: how a process loads decides its RSS. Throughput and latency use the
// Go executable as is (--tls-destination-port aims its transparent listener at
// the local server without an iptables redirect) and, for the TypeScript
// sidecar, a benchmark entry of the same code that can do the same.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer, type Server } from "node:net";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { startAuthoritativeDns } from "../../test/egress/support/authoritative-dns.js";
import { makeTestCert } from "../../test/egress/support/certs.js";
import { buildSidecar } from "./build.js";
import { fetchBytes, type Route, routes } from "./clients.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "../..");
const GO_BINARY = join(REPO, "dist/egress/sandbox-egress");
const TS_CLI = join(REPO, "dist/cli/main.js");
const BULK_BYTES = 256 * 1024 * 1024;
const BULK_RUNS = 5;
const LATENCY_CONNECTIONS = 300;
const CONCURRENT = 100;
const START_RUNS = 7;

const MiB = 1024 * 1024;
const round = (n: number, digits = 2) => Number(n.toFixed(digits));
type Impl = "ts" | "go";
const IMPLS: Impl[] = ["ts", "go"];

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

const POLICY = JSON.stringify({
  defaultAction: "deny",
  // Loopback stands in for the internet here; as a reserved range it needs its own rule.
  rules: [
    { action: "allow", target: "bench.test" },
    { action: "allow", target: "127.0.0.1/32" },
  ],
});

interface Sidecar {
  child: ChildProcess;
  proxyPort: number;
  tlsPort: number;
  /** ms from spawn() to the "egress sidecar ready" line. */
  readyMs: number;
  close(): void;
}

/** n distinct free ports: all held open at once, so none is handed out twice. */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Server>((resolve, reject) => {
          const server = createServer();
          server.once("error", reject);
          server.listen(0, "127.0.0.1", () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** argv of the production sidecar command of `impl`, prefixed by `wrap` (e.g. ip netns exec). */
function command(impl: Impl): string[] {
  return impl === "go" ? [GO_BINARY] : [process.execPath, TS_CLI];
}

/**
 * Start the production command and time it to its ready line (what the docker
 * backend waits for). `lockdown`: in a fresh network namespace, with the
 * lockdown first, as the docker sidecar starts.
 */
async function startSidecar(
  impl: Impl,
  upstreamDns: string,
  opts: { tlsDestination?: number; netns?: string } = {},
): Promise<Sidecar> {
  const dir = mkdtempSync(join(tmpdir(), "bench-egress-"));
  const policyFile = join(dir, "policy.json");
  writeFileSync(policyFile, POLICY);
  const [proxy, dns, http, tls, health, metrics] = await freePorts(6);
  const ports = {
    proxy: proxy!,
    dns: dns!,
    http: http!,
    tls: tls!,
    health: health!,
    metrics: metrics!,
  };
  const flags = [
    `--policy-file=${policyFile}`,
    "--sandbox=bench/egress",
    `--upstream-dns=${upstreamDns}`,
    ...Object.entries(ports).map(([k, v]) => `--${k}-port=${v}`),
    ...(opts.tlsDestination ? [`--tls-destination-port=${opts.tlsDestination}`] : []),
    ...(opts.netns ? ["--lockdown", "--sidecar-uid=1337", "--iptables=nft"] : []),
  ];
  const wrap = opts.netns ? ["ip", "netns", "exec", opts.netns] : [];
  const argv = [...wrap, ...command(impl), "egress", ...flags];
  const started = process.hrtime.bigint();
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "inherit"] });
  const close = () => {
    child.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const readyMs = await new Promise<number>((resolve, reject) => {
      let buf = "";
      const onData = (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('"msg":"egress sidecar ready"')) {
          resolve(Number(process.hrtime.bigint() - started) / 1e6);
          // From here on the decision log is read by no one, as in production.
          (child.stdout as Readable).removeListener("data", onData);
          (child.stdout as Readable).resume();
        }
      };
      (child.stdout as Readable).on("data", onData);
      child.once("exit", (code) =>
        reject(new Error(`${impl} sidecar exited with ${code}: ${buf}`)),
      );
      setTimeout(() => reject(new Error(`${impl} sidecar not ready in 10 s: ${buf}`)), 10_000);
    });
    return { child, proxyPort: ports.proxy, tlsPort: ports.tls, readyMs, close };
  } catch (err) {
    close();
    throw err;
  }
}

async function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise((r) => child.once("exit", r));
}

/** Start-up to ready, median and spread of START_RUNS, plain and with the lockdown in a netns. */
async function readiness(impl: Impl, upstreamDns: string) {
  const plain: number[] = [];
  const locked: number[] = [];
  for (let i = 0; i < START_RUNS; i++) {
    const s = await startSidecar(impl, upstreamDns);
    plain.push(s.readyMs);
    s.close();
    await waitExit(s.child);
    const ns = `bench-egress-${process.pid}-${i}`;
    execFileSync("ip", ["netns", "add", ns]);
    try {
      execFileSync("ip", ["-n", ns, "link", "set", "lo", "up"]);
      const l = await startSidecar(impl, "127.0.0.1:53", { netns: ns });
      locked.push(l.readyMs);
      l.close();
      await waitExit(l.child);
    } finally {
      execFileSync("ip", ["netns", "del", ns]);
    }
  }
  const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b).map((x) => round(x, 1));
  return {
    processStartMs: { median: round(median(plain), 1), runs: sorted(plain) },
    withLockdownInNetnsMs: { median: round(median(locked), 1), runs: sorted(locked) },
  };
}

/** RSS of the production sidecar: idle, holding CONCURRENT tunnels, after bulk transfers. */
async function rss(impl: Impl, ca: Buffer, serverPort: number, upstreamDns: string) {
  const s = await startSidecar(impl, upstreamDns);
  const pid = s.child.pid!;
  try {
    await new Promise((r) => setTimeout(r, 500));
    const idle = rssMiB(pid);
    const [, proxy] = routes(ca, { server: serverPort, proxy: s.proxyPort, tls: 0 });
    for (let i = 0; i < 20; i++) await fetchBytes(await proxy!.open(), "/bytes/100");
    // CONCURRENT open tunnels, each with a completed TLS handshake.
    const tunnels = await Promise.all(Array.from({ length: CONCURRENT }, () => proxy!.open()));
    await new Promise((r) => setTimeout(r, 300));
    const atConcurrent = rssMiB(pid);
    for (const t of tunnels) t.destroy();
    for (let run = 0; run < BULK_RUNS; run++) {
      await fetchBytes(await proxy!.open(), `/bytes/${BULK_BYTES}`);
    }
    return { idle, [`at${CONCURRENT}Connections`]: atConcurrent, afterBulkTransfers: rssMiB(pid) };
  } finally {
    s.close();
  }
}

/** A process's CPU time so far (user + system), seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks
}

/** The machine's busy and total CPU time so far (all cores), in clock ticks. */
function machineTicks(): { busy: number; total: number } {
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0]!.split(/\s+/).slice(1).map(Number);
  const total = cpu.reduce((a, b) => a + b, 0);
  return { busy: total - cpu[3]! - cpu[4]!, total }; // less idle and iowait
}

/**
 * Where a bulk transfer's CPU goes, per route (mean over the runs): each
 * process's CPU ms per GiB moved, and how busy the machine was. With the
 * cores saturated, what a proxy spends per byte is taken from the client and
 * the server, so its ratio to direct is about direct's CPU per byte over the
 * proxied route's.
 */
export interface TransferCpu {
  machineBusyPercent: number;
  msPerGiB: Record<string, number>;
}

/**
 * Bulk download rate (MiB/s) per route, routes interleaved: the best of
 * BULK_RUNS, since on a shared machine the other load only ever slows a run
 * down (the best run is the closest to what the path itself allows).
 * Also where each transfer's CPU goes (TransferCpu).
 */
async function throughput(
  all: Route[],
  processes: Record<string, number>,
): Promise<{ rates: number[]; cpu: TransferCpu[] }> {
  const rates: number[][] = all.map(() => []);
  const busy: number[][] = all.map(() => []);
  const perGiB: Record<string, number[]>[] = all.map(() => ({}));
  for (let run = 0; run < BULK_RUNS; run++) {
    for (const [i, route] of all.entries()) {
      const tls = await route.open();
      const cpuBefore = Object.entries(processes).map(([n, pid]) => [n, cpuSeconds(pid)] as const);
      const ticksBefore = machineTicks();
      const start = process.hrtime.bigint();
      const bytes = await fetchBytes(tls, `/bytes/${BULK_BYTES}`);
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const ticks = machineTicks();
      if (bytes !== BULK_BYTES) throw new Error(`${route.name}: got ${bytes} bytes`);
      rates[i]!.push(bytes / MiB / seconds);
      busy[i]!.push((ticks.busy - ticksBefore.busy) / (ticks.total - ticksBefore.total));
      for (const [name, was] of cpuBefore) {
        const ms = ((cpuSeconds(processes[name]!) - was) * 1000 * 1024 * MiB) / bytes;
        perGiB[i]![name] = [...(perGiB[i]![name] ?? []), ms];
      }
    }
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return {
    rates: rates.map((r) => round(Math.max(...r), 1)),
    cpu: all.map((_, i) => ({
      machineBusyPercent: round(mean(busy[i]!) * 100, 1),
      msPerGiB: Object.fromEntries(
        Object.entries(perGiB[i]!).map(([n, xs]) => [n, round(mean(xs), 0)]),
      ),
    })),
  };
}

interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
}

/** New connection to a completed small HTTPS exchange, per route, interleaved. */
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

/** The TypeScript sidecar's benchmark entry (same code, transparent listener aimed at serverPort). */
async function startTsEntry(serverPort: number, dnsPort: number) {
  const script = buildSidecar(REPO);
  const child = spawn(
    process.execPath,
    [
      script,
      JSON.stringify({
        sandboxId: "bench/egress",
        policy: JSON.parse(POLICY),
        upstreamDns: `127.0.0.1:${dnsPort}`,
        ports: { dns: 0, http: 0, tls: 0, proxy: 0 },
        health: false,
        metrics: false,
        destinationPorts: { http: 80, tls: serverPort },
      }),
    ],
    { stdio: ["ignore", "ignore", "inherit", "pipe"] },
  );
  const ports = await new Promise<Record<string, number>>((resolve, reject) => {
    let buf = "";
    (child.stdio[3] as Readable).on("data", (d: Buffer) => {
      buf += d.toString();
      const line = buf.split("\n").find((l) => l.includes('"event":"ready"'));
      if (line) resolve(JSON.parse(line).ports);
    });
    child.once("exit", (code) => reject(new Error(`sidecar exited with ${code}`)));
  });
  return { child, proxyPort: ports.proxy!, tlsPort: ports.tls! };
}

/** RSS of an empty node process on this machine: the floor under any sidecar written in Node. */
async function nodeBaselineRss(): Promise<number> {
  const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 5000)"], { stdio: "ignore" });
  await new Promise((r) => setTimeout(r, 500));
  const value = rssMiB(child.pid!);
  child.kill();
  return value;
}

function versions() {
  const text = (argv: string[]) => {
    try {
      return execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8" }).trim();
    } catch {
      return "unknown";
    }
  };
  return {
    node: process.version,
    go: text(["go", "env", "GOVERSION"]),
    goBinary: text([GO_BINARY, "version"]),
    goBinaryBytes: readFileSync(GO_BINARY).length,
    kernel: release(),
    iptables: text(["iptables-nft", "--version"]),
  };
}

async function main() {
  // A shared machine: the load beside the benchmark explains its spread.
  const loadBefore = loadavg().map((x) => round(x, 1));
  const cert = makeTestCert(["bench.test"]);
  const server = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      join(REPO, "bench/egress/server-main.ts"),
      JSON.stringify({ certPath: cert.certPath, keyPath: cert.keyPath }),
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const serverPort = await new Promise<number>((resolve, reject) => {
    (server.stdout as Readable).once("data", (d: Buffer) => resolve(JSON.parse(String(d)).port));
    server.once("exit", (code) => reject(new Error(`origin server exited with ${code}`)));
  });
  const dns = await startAuthoritativeDns({
    host: "127.0.0.1",
    port: 0,
    zone: { "bench.test": { A: ["127.0.0.1"] } },
  });
  const upstream = `127.0.0.1:${dns.port}`;
  const tsEntry = await startTsEntry(serverPort, dns.port);
  const goSidecar = await startSidecar("go", upstream, { tlsDestination: serverPort });
  try {
    const start: Record<string, unknown> = {};
    const memory: Record<string, unknown> = {};
    for (const impl of IMPLS) {
      start[impl] = await readiness(impl, upstream);
      memory[impl] = await rss(impl, cert.cert, serverPort, upstream);
    }
    const [direct, tsProxy, tsTransparent, directOverSocket] = routes(cert.cert, {
      server: serverPort,
      proxy: tsEntry.proxyPort,
      tls: tsEntry.tlsPort,
    });
    const [, goProxy, goTransparent] = routes(cert.cert, {
      server: serverPort,
      proxy: goSidecar.proxyPort,
      tls: goSidecar.tlsPort,
    });
    const all = [direct!, tsProxy!, tsTransparent!, goProxy!, goTransparent!, directOverSocket!];
    // Warm up every path (JIT, DNS cache) before measuring.
    for (const r of all)
      for (let i = 0; i < 20; i++) await fetchBytes(await r.open(), "/bytes/100");
    const [l0, l1, l2, l3, l4] = await newConnectionLatency(all);
    const bulk = await throughput(all, {
      client: process.pid,
      server: server.pid!,
      tsSidecar: tsEntry.child.pid!,
      goSidecar: goSidecar.child.pid!,
    });
    const [t0, t1, t2, t3, t4, t5] = bulk.rates;
    const ratio = (x: number) => round(x / t0!, 3);
    const results = {
      date: new Date().toISOString(),
      machine: {
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model,
        ...versions(),
        loadAverage: { before: loadBefore, after: loadavg().map((x) => round(x, 1)) },
      },
      setup: {
        bulkBytes: BULK_BYTES,
        bulkRuns: BULK_RUNS,
        bulkRate: "best of bulkRuns per route (other load only slows a run)",
        latencyConnections: LATENCY_CONNECTIONS,
        concurrentConnections: CONCURRENT,
        startRuns: START_RUNS,
        old: "ts: node dist/cli/main.js egress (throughput/latency: bench/egress/sidecar-entry.ts, same code)",
        new: "go: dist/egress/sandbox-egress egress (what both backends run)",
      },
      readyMs: start,
      sidecarRssMiB: { ...memory, nodeBaseline: await nodeBaselineRss() },
      throughput: {
        directMiBps: t0,
        // TLS over a socket first handled in JS, as over a CONNECT tunnel: the
        // client-side share of the explicit proxy's ratio.
        directOverSocketMiBps: t5,
        directOverSocketRatio: ratio(t5!),
        cpu: Object.fromEntries(
          [
            "direct",
            "ts:explicit-proxy",
            "ts:transparent-tls",
            "go:explicit-proxy",
            "go:transparent-tls",
            "direct-over-socket",
          ].map((name, i) => [name, bulk.cpu[i]]),
        ),
        ts: {
          explicitProxyMiBps: t1,
          transparentTlsMiBps: t2,
          explicitProxyRatio: ratio(t1!),
          transparentTlsRatio: ratio(t2!),
        },
        go: {
          explicitProxyMiBps: t3,
          transparentTlsMiBps: t4,
          explicitProxyRatio: ratio(t3!),
          transparentTlsRatio: ratio(t4!),
        },
      },
      newConnectionMs: {
        direct: l0,
        ts: {
          explicitProxy: l1,
          transparentTls: l2,
          addedP50ExplicitProxy: round(l1!.p50 - l0!.p50, 3),
          addedP50TransparentTls: round(l2!.p50 - l0!.p50, 3),
        },
        go: {
          explicitProxy: l3,
          transparentTls: l4,
          addedP50ExplicitProxy: round(l3!.p50 - l0!.p50, 3),
          addedP50TransparentTls: round(l4!.p50 - l0!.p50, 3),
        },
      },
      goals: { idleRssMiB: 10, readyMs: 50, throughputRatio: 0.9, addedLatencyP50Ms: 1 },
    };
    mkdirSync(join(REPO, "bench/results"), { recursive: true });
    const out = join(REPO, "bench/results/egress.json");
    writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
    // In the repository's format (short arrays on one line), so lint stays green.
    execFileSync(join(REPO, "node_modules/.bin/biome"), ["format", "--write", out]);
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  } finally {
    tsEntry.child.kill("SIGTERM");
    goSidecar.close();
    server.kill("SIGTERM");
    await dns.close();
  }
}

await main();
process.exit(0);
