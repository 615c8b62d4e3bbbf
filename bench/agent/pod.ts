// Data-plane benchmark on the pod backend (figures, not a timed test), on the
// real node (test/support/node), in one run on one sandbox:
//   - exec round trip of `true` through the SDK (agent via pods/portforward,
//     kept-alive connections) vs `kubectl exec` (pods/exec), p50/p99;
//   - the cost of a new port-forwarded connection (a fresh client's first exec);
//   - file write/read throughput through the agent;
//   - agent RSS idle, after the work above, and under 100 concurrent execs.
// Prints a summary, writes bench/results/agent-pod.json.
//
//   flock /tmp/sbx-node.lock npm run bench:agent:pod [-- --execs 300]
//   (SANDBOX_NODE_OPERATOR_IMAGE: another build of the operator image)
import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { parseArgs, promisify } from "node:util";
import { Registry } from "prom-client";
import { Sandbox } from "../../packages/sdk/src/index.js";
import { loadKubeConfig } from "../../src/kube/config.js";
import { createLogger } from "../../src/observability/logger.js";
import { startSandboxController } from "../../src/sandbox/controller.js";
import { startControlPlane } from "../../test/support/control-plane.js";
import { OPERATOR_IMAGE, SANDBOX_IMAGE } from "../../test/support/docker.js";
import { NODE_CONTROLLERS, startNode } from "../../test/support/node/index.js";
import { NODE_SANDBOX_IMAGE } from "../../test/support/node/pods.js";
import { REPO_ROOT } from "../../test/support/paths.js";
import { percentile, timeIt } from "../support/stats.js";

const run = promisify(execFile);
const { values: args } = parseArgs({
  options: {
    execs: { type: "string", default: "300" },
    "kubectl-execs": { type: "string", default: "30" },
    "file-mib": { type: "string", default: "64" },
    out: { type: "string", default: join(REPO_ROOT, "bench/results/agent-pod.json") },
  },
});
const N = Number(args.execs);
const NK = Number(args["kubectl-execs"]);
const FILE_MIB = Number(args["file-mib"]);
const IMAGE = process.env.SANDBOX_NODE_OPERATOR_IMAGE ?? OPERATOR_IMAGE;
const log = (line: string) => process.stderr.write(`[bench:agent:pod] ${line}\n`);

const pct = (samples: number[], p: number) => Number(percentile(samples, p).toFixed(2));

const cp = await startControlPlane({
  controllerManager: true,
  scheduler: true,
  crds: true,
  kubeletClient: true,
  extraControllers: NODE_CONTROLLERS,
});
const node = await startNode(cp, { images: [IMAGE, SANDBOX_IMAGE] });
log(`node ${node.name} Ready in ${node.timings.total} ms`);
const kc = cp.kubeConfig();
const controller = await startSandboxController({
  kubeConfig: loadKubeConfig({ kubeconfig: cp.kubeconfigPath, qps: 100, burst: 200 }),
  namespaces: [],
  defaultBackend: "pod",
  egressImage: IMAGE,
  concurrency: 4,
  stallTimeoutSeconds: 300,
  registry: new Registry(),
  log: createLogger({ level: "silent" }),
});
const kubectl = join(cp.binDir, "kubectl");

try {
  const t0 = performance.now();
  const box = await Sandbox.create(
    {
      image: NODE_SANDBOX_IMAGE,
      command: ["sleep", "3600"],
      resources: { cpu: "500m", memory: "256Mi" },
    },
    { kubeconfig: kc, namespace: "default", name: "bench" },
  );
  const createToAgentMs = Math.round(performance.now() - t0);
  log(`sandbox created, Ready and its agent answering in ${createToAgentMs} ms`);
  const agentPid = Number(
    (
      await box.exec(
        "for p in /proc/[0-9]*; do grep -q sandbox-agent $p/cmdline 2>/dev/null && basename $p; done | head -1",
      )
    ).stdout.trim(),
  );
  const rss = async () =>
    Number(
      /VmRSS:\s+(\d+)/.exec((await box.exec(["cat", `/proc/${agentPid}/status`])).stdout)?.[1],
    );
  // Let the idle release (a second without requests) happen first.
  await new Promise((r) => setTimeout(r, 1500));
  const idleKiB = await rss();

  const sdk = await timeIt(N, () => box.exec(["true"]));
  log(`SDK exec true: p50 ${pct(sdk, 50)} ms, p99 ${pct(sdk, 99)} ms (n=${N})`);

  // A fresh client: Secret + Pod reads, a new port-forward connection, then the exec.
  const fresh = await timeIt(
    10,
    async () => {
      const s = await Sandbox.get("bench", { kubeconfig: kc, namespace: "default" });
      await s.exec(["true"]);
      s.close();
    },
    1,
  );
  log(`fresh client's first exec: p50 ${pct(fresh, 50)} ms`);

  const kube = await timeIt(
    NK,
    () =>
      run(kubectl, [
        "--kubeconfig",
        cp.kubeconfigPath,
        "exec",
        "-n",
        "default",
        "bench",
        "-c",
        "sandbox",
        "--",
        "true",
      ]),
    2,
  );
  log(`kubectl exec true: p50 ${pct(kube, 50)} ms, p99 ${pct(kube, 99)} ms (n=${NK})`);

  const data = randomBytes(FILE_MIB * 2 ** 20);
  let t = performance.now();
  await box.files.write("/workspace/bench.bin", Readable.from([data]));
  const writeMiBps = Math.round(FILE_MIB / ((performance.now() - t) / 1000));
  t = performance.now();
  const back = await box.files.read("/workspace/bench.bin");
  const readMiBps = Math.round(FILE_MIB / ((performance.now() - t) / 1000));
  if (!back.equals(data)) throw new Error("the file came back different");
  log(`files: write ${writeMiBps} MiB/s, read ${readMiBps} MiB/s (${FILE_MIB} MiB)`);

  let peakKiB = 0;
  const concurrentStart = performance.now();
  await Promise.all(
    Array.from({ length: 100 }, async (_, i) => {
      await box.exec(["sh", "-c", "sleep 0.5"]);
      if (i === 0) peakKiB = await rss();
    }),
  );
  const concurrentMs = Math.round(performance.now() - concurrentStart);
  peakKiB = Math.max(
    peakKiB,
    Number(
      /VmHWM:\s+(\d+)/.exec((await box.exec(["cat", `/proc/${agentPid}/status`])).stdout)?.[1],
    ),
  );
  const afterWorkKiB = await rss();
  await new Promise((r) => setTimeout(r, 1500));
  const idleAfterKiB = await rss();
  log(
    `agent RSS: idle ${idleKiB} KiB, peak ${peakKiB} KiB (100 concurrent execs in ${concurrentMs} ms), idle again ${idleAfterKiB} KiB`,
  );

  const results = {
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      kernel: release(),
      loadavg: execFileSync("cat", ["/proc/loadavg"], { encoding: "utf8" }).trim(),
    },
    versions: {
      kubelet: execFileSync(join(node.binDir, "kubelet"), ["--version"], {
        encoding: "utf8",
      }).trim(),
      kubectl: execFileSync(kubectl, ["version", "--client", "-o", "json"], {
        encoding: "utf8",
      }).match(/"gitVersion":\s*"([^"]+)"/)?.[1],
      containerd: execFileSync("containerd", ["--version"], { encoding: "utf8" }).trim(),
      node: process.version,
    },
    createToAgentMs,
    exec: {
      sdk: { p50: pct(sdk, 50), p99: pct(sdk, 99), n: N },
      sdkFreshClient: { p50: pct(fresh, 50), p99: pct(fresh, 99), n: fresh.length },
      kubectlExec: { p50: pct(kube, 50), p99: pct(kube, 99), n: NK },
      speedupVsKubectlP50: +(pct(kube, 50) / pct(sdk, 50)).toFixed(1),
    },
    files: { mib: FILE_MIB, writeMiBps, readMiBps },
    rss: {
      idleKiB,
      afterWorkKiB,
      peakKiBUnder100ConcurrentExecs: peakKiB,
      idleAgainKiB: idleAfterKiB,
      concurrent100Ms: concurrentMs,
    },
  };
  writeFileSync(args.out!, `${JSON.stringify(results, null, 2)}\n`);
  log(`-> ${args.out}`);
  await box.delete();
} finally {
  await controller.stop();
  await node.stop();
  await cp.stop();
}
