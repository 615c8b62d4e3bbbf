// Scale benchmark of the pod backend against the locally built control plane
// (etcd, kube-apiserver, kube-controller-manager, kube-scheduler; kwok plays
// the kubelet), with the operator's CLI as a separate process:
//   throughput  N Sandboxes created as fast as the apiserver accepts them, until
//               each has its Pod and NetworkPolicy and reports Running; cleanup
//   floor       the same N Pods + NetworkPolicies from a plain client-node loop
//   latency     apply -> Pod created and apply -> Ready at a steady create rate
//   memory      controller RSS and heap at 0 and at each N
//   API cost    requests per sandbox lifecycle, by who and verb (audit log);
//               controller writes per minute across idle Running sandboxes
// Prints tables; writes <out>/<date>.json and <date>.md.
//
//   npm run bench:scale [-- --sizes 1000,5000 --operator-sizes 10000 --flags="--kube-api-qps=50"]
//   npm run bench:scale -- --smoke     (N=50, seconds: what CI runs)
import { execFileSync } from "node:child_process";
import { cpus, release, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { unlimited } from "../../src/kube/config.js";
import { createLogger } from "../../src/observability/logger.js";
import { startControlPlane } from "../../test/support/control-plane.js";
import { REPO_ROOT } from "../../test/support/paths.js";
import { IDENTITIES } from "./api-cost.js";
import { startController } from "./controller-process.js";
import { Clients } from "./objects.js";
import { type Bench, floor, latency, throughput } from "./phases.js";
import { type Results, tables, writeResults } from "./report.js";
import { Tracker } from "./tracker.js";

const { values: args } = parseArgs({
  options: {
    smoke: { type: "boolean", default: false },
    /** Sizes run with the floor beside them. */
    sizes: { type: "string", default: "1000,5000" },
    /** Sizes run for the operator only (memory at scale). */
    "operator-sizes": { type: "string", default: "10000" },
    "latency-rate": { type: "string", default: "50" },
    "latency-seconds": { type: "string", default: "30" },
    /** Idle-writes window, measured at the first size. */
    "idle-seconds": { type: "string", default: "60" },
    width: { type: "string", default: "32" },
    /** Longest any one wait may take (default: 200 ms per sandbox of the largest size, at least 120 s). */
    "timeout-seconds": { type: "string" },
    /** Extra controller flags (space-separated), e.g. "--kube-api-qps=100 --concurrency=16". */
    flags: { type: "string", default: "" },
    out: { type: "string", default: join(REPO_ROOT, "bench/results/scale") },
  },
});
const list = (s: string) => s.split(",").filter(Boolean).map(Number);
const smoke = args.smoke;
const sizes = smoke ? [50] : list(args.sizes!);
const operatorSizes = smoke ? [] : list(args["operator-sizes"]!);
const latencyRate = Number(args["latency-rate"]);
const latencySeconds = smoke ? 1 : Number(args["latency-seconds"]);
const idleSeconds = smoke ? 5 : Number(args["idle-seconds"]);
const flags = args.flags!.split(/\s+/).filter(Boolean);
const largest = Math.max(...sizes, ...operatorSizes, latencyRate * latencySeconds);

const log = (line: string) => process.stderr.write(`[bench:scale] ${line}\n`);
const started = performance.now();
const cp = await startControlPlane({
  controllerManager: true,
  scheduler: true,
  kwok: true,
  crds: true,
  scale: { pods: Math.ceil(largest * 1.2) + 100 },
  auditAllVerbs: true,
});
log(`control plane up: ${JSON.stringify(cp.timings)}`);
// Clients keep their connections alive (as the operator does): a floor paying a
// TLS handshake per request would be no ceiling.
const asUser = (user: string) => {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(join(cp.dir, `${user}.kubeconfig`));
  return unlimited(kc);
};

const namespace = "bench";
const floorNamespace = "floor";
const core = cp.kubeConfig().makeApiClient(k8s.CoreV1Api);
for (const name of [namespace, floorNamespace])
  await core.createNamespace({ body: { metadata: { name } } });

const tracker = new Tracker(
  asUser(IDENTITIES.observer),
  [namespace, floorNamespace],
  createLogger({ level: "warn" }),
);
await tracker.start();
const controller = await startController({
  kubeconfig: join(cp.dir, `${IDENTITIES.controller}.kubeconfig`),
  namespace,
  logDir: cp.dir,
  flags,
});

try {
  const bench: Bench = {
    clients: new Clients(asUser(IDENTITIES.client)),
    tracker,
    controller,
    auditLogPath: cp.auditLogPath,
    namespace,
    floorNamespace,
    width: Number(args.width),
    timeoutMs: args["timeout-seconds"]
      ? Number(args["timeout-seconds"]) * 1000
      : Math.max(120_000, largest * 200),
    log,
  };
  await new Promise((r) => setTimeout(r, 2000));
  const idleMemory = await controller.memory();
  log(`memory at 0: ${JSON.stringify(idleMemory)}`);
  const settleMs = smoke ? 500 : 5000;

  const latencyResult = await latency(bench, latencyRate, latencySeconds);
  const runs: Results["runs"] = [];
  for (const [i, n] of sizes.entries()) {
    const f = await floor(bench, n);
    const o = await throughput(bench, n, { settleMs, idleSeconds: i === 0 ? idleSeconds : 0 });
    runs.push({
      sandboxes: n,
      floor: f,
      operator: o,
      ratio: Number((o.runningPerSecond / f.runningPerSecond).toFixed(3)),
    });
  }
  for (const n of operatorSizes)
    runs.push({ sandboxes: n, operator: await throughput(bench, n, { settleMs }) });

  const version = (bin: string, ...a: string[]) =>
    execFileSync(join(cp.binDir, bin), a, { encoding: "utf8" }).trim().split("\n")[0]!;
  const git = (...a: string[]) =>
    execFileSync("git", a, { cwd: REPO_ROOT, encoding: "utf8" }).trim();
  const results: Results = {
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? "unknown",
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      kernel: release(),
      loadAverageAtEnd: (await import("node:os"))
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(" "),
    },
    versions: {
      node: process.version,
      kubernetes: version("kube-apiserver", "--version"),
      etcd: version("etcd", "--version"),
      kwok: version("kwok", "--version"),
      operator: `${git("rev-parse", "--short", "HEAD")}${git("status", "--porcelain", "src").length ? "+dirty" : ""}`,
    },
    configuration: {
      smoke,
      controllerArgs: controller.args.filter((a) => !/kubeconfig|bind-address/.test(a)).join(" "),
      controllerNodeFlags: controller.nodeFlags.join(" "),
      clientInFlight: bench.width,
      latency: `${latencyRate}/s for ${latencySeconds} s`,
      idleWindowSeconds: idleSeconds,
      sandboxSpec: "busybox, sleep infinity, 100m/64Mi, ttl 3600 s, egress deny (default)",
      controlPlane:
        "one host; audit log of every request (blocking mode); APF on, but every client here is in system:masters (exempt); scheduler and controller-manager unthrottled; 1 kwok node",
      timing:
        "watch-observed by the benchmark process (its informers), from just before each create request",
      totalRunSeconds: Math.round((performance.now() - started) / 1000),
    },
    idle: { rssMiB: idleMemory.rssMiB, heapUsedMiB: idleMemory.heapUsedMiB },
    latency: latencyResult,
    runs,
  };
  process.stdout.write(`${tables(results)}\n`);
  const files = writeResults(args.out!, results);
  log(`wrote ${files.json} and ${files.md}`);
} finally {
  await controller.stop();
  await tracker.stop();
  await cp.stop();
}
process.exit(0);
