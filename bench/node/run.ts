// Real-node start-up latency of the pod backend: apply -> Running and apply ->
// Ready for N sandboxes (egress-init, egress sidecar with its startup probe,
// workload) against N bare Pods with the same image and command, created in
// the same run on the same node (test/support/node). Figures, not a timed test.
//
//   npm run bench:node [-- --n 50 --out bench/results/node.json]
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { Registry } from "prom-client";
import { API_VERSION, GROUP, SANDBOX_KIND, SANDBOX_PLURAL, VERSION } from "../../src/api/group.js";
import { loadKubeConfig } from "../../src/kube/config.js";
import { createLogger } from "../../src/observability/logger.js";
import { startSandboxController } from "../../src/sandbox/controller.js";
import { startControlPlane } from "../../test/support/control-plane.js";
import { OPERATOR_IMAGE, SANDBOX_IMAGE } from "../../test/support/docker.js";
import { NODE_CONTROLLERS, startNode } from "../../test/support/node/index.js";
import { NODE_SANDBOX_IMAGE } from "../../test/support/node/pods.js";
import { REPO_ROOT } from "../../test/support/paths.js";
import { percentile } from "../support/stats.js";
import { STEPS, type Step, stepDurations, stepTimes } from "./breakdown.js";

const { values: args } = parseArgs({
  options: {
    n: { type: "string", default: "50" },
    /**
     * Objects in flight at once. A sandbox requests 60m CPU (the sidecar's 50m
     * and the workload's 10m), so a 2-CPU node schedules 28 at a time: 50 run
     * as two waves of 25, bare Pods too.
     */
    wave: { type: "string", default: "25" },
    out: { type: "string", default: join(REPO_ROOT, "bench/results/node.json") },
    /** The workload's CPU (requests = limits), for bare Pods and sandboxes alike. */
    cpu: { type: "string", default: "10m" },
  },
});
const N = Number(args.n);
const WAVE = Number(args.wave);
const RESOURCES = { cpu: args.cpu!, memory: "64Mi" };
const COMMAND = ["sleep", "3600"];
const log = (line: string) => process.stderr.write(`[bench:node] ${line}\n`);

const cp = await startControlPlane({
  controllerManager: true,
  scheduler: true,
  crds: true,
  kubeletClient: true,
  extraControllers: NODE_CONTROLLERS,
});
const node = await startNode(cp, { images: [OPERATOR_IMAGE, SANDBOX_IMAGE] });
log(`node ${node.name} Ready in ${node.timings.total} ms`);
const kc = cp.kubeConfig();
const core = kc.makeApiClient(k8s.CoreV1Api);
const objects = kc.makeApiClient(k8s.CustomObjectsApi);
const controller = await startSandboxController({
  kubeConfig: loadKubeConfig({ kubeconfig: cp.kubeconfigPath, qps: 100, burst: 200 }),
  namespaces: [],
  defaultBackend: "pod",
  egressImage: OPERATOR_IMAGE,
  concurrency: 8,
  stallTimeoutSeconds: 300,
  registry: new Registry(),
  log: createLogger({ level: "silent" }),
});

interface Timing {
  running?: number;
  ready?: number;
  /** Where the time went (ms per step, from the Pod's status; see breakdown.ts). */
  steps?: Partial<Record<Step, number>>;
  /** Container restarts seen (an init step that failed and was retried costs a back-off). */
  restarts?: number;
  /** CPU the Pod's containers used from creation to Ready (its cgroup's cpuacct.usage). */
  cpuMs?: number;
}

/**
 * CPU time (ms) charged to a Pod's cgroup so far. cgroup v1 charges usage up
 * the hierarchy as it happens, so exited init containers are counted too.
 * Containerd, runc and the kubelet run outside it (their cost is not here).
 */
function podCpuMs(uid: string): number | undefined {
  const kubepods = `/sys/fs/cgroup/cpuacct/sbxnode-${node.name.replace(/^sbx-node-/, "")}/kubepods`;
  for (const qos of ["", "burstable", "besteffort"]) {
    const file = join(kubepods, qos, `pod${uid}`, "cpuacct.usage");
    if (existsSync(file)) return Number(readFileSync(file, "utf8")) / 1e6;
  }
  return undefined;
}

/** Watch Pods in `namespace`, recording when each first reports Running and Ready. */
async function track(
  namespace: string,
  created: Map<string, number>,
  timings: Map<string, Timing>,
) {
  const watch = new k8s.Watch(kc);
  const req = await watch.watch(
    `/api/v1/namespaces/${namespace}/pods`,
    {},
    (_type, pod: k8s.V1Pod) => {
      const name = pod.metadata!.name!;
      const t = timings.get(name) ?? {};
      const now = performance.now();
      if (t.running === undefined && pod.status?.phase === "Running")
        t.running = now - created.get(name)!;
      const ready = pod.status?.conditions?.find((c) => c.type === "Ready")?.status === "True";
      if (t.ready === undefined && ready) {
        t.ready = now - created.get(name)!;
        t.cpuMs = podCpuMs(pod.metadata!.uid!);
      }
      timings.set(name, t);
    },
    () => undefined,
  );
  return () => req.abort();
}

/**
 * Bare Pods and sandboxes wave by wave, alternating, so both meet the same
 * machine: it is shared, and its load drifts over a run.
 */
async function measureBoth(): Promise<{
  pods: Map<string, Timing>;
  sandboxes: Map<string, Timing>;
}> {
  const pods = new Map<string, Timing>();
  const sandboxes = new Map<string, Timing>();
  for (let first = 0; first < N; first += WAVE) {
    const to = Math.min(N, first + WAVE);
    for (const [k, v] of await measureWave("pod", first, to)) pods.set(k, v);
    for (const [k, v] of await measureWave("sandbox", first, to)) sandboxes.set(k, v);
    log(`wave ${first}-${to - 1} done, load ${loadavg()[0]!.toFixed(1)}`);
  }
  return { pods, sandboxes };
}

async function measureWave(
  kind: "sandbox" | "pod",
  from: number,
  to: number,
): Promise<Map<string, Timing>> {
  const namespace = `bench-${kind}-${from}`;
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  const created = new Map<string, number>();
  const timings = new Map<string, Timing>();
  const stop = await track(namespace, created, timings);
  const creates: Promise<unknown>[] = [];
  for (let i = from; i < to; i++) {
    const name = `${kind}-${i}`;
    created.set(name, performance.now());
    creates.push(
      kind === "sandbox"
        ? objects.createNamespacedCustomObject({
            group: GROUP,
            version: VERSION,
            namespace,
            plural: SANDBOX_PLURAL,
            body: {
              apiVersion: API_VERSION,
              kind: SANDBOX_KIND,
              metadata: { name },
              spec: { image: NODE_SANDBOX_IMAGE, command: COMMAND, resources: RESOURCES },
            },
          })
        : core.createNamespacedPod({
            namespace,
            body: {
              metadata: { name },
              spec: {
                restartPolicy: "Never",
                automountServiceAccountToken: false,
                containers: [
                  {
                    name: "main",
                    image: NODE_SANDBOX_IMAGE,
                    command: COMMAND,
                    resources: { requests: RESOURCES, limits: RESOURCES },
                  },
                ],
              },
            },
          }),
    );
  }
  await Promise.all(creates);
  const deadline = Date.now() + 600_000;
  while ([...created.keys()].some((n) => timings.get(n)?.ready === undefined)) {
    if (Date.now() > deadline) throw new Error(`${kind}: not all Ready after 10 min`);
    await new Promise((r) => setTimeout(r, 200));
  }
  stop();
  await recordSteps(kind, namespace, timings);
  await core.deleteNamespace({ name: namespace });
  // Let the node settle (containers stopped) before the next run.
  const settle = Date.now() + 120_000;
  while (Date.now() < settle && node.ctr(["tasks", "ls", "-q"]).trim())
    await new Promise((r) => setTimeout(r, 500));
  return timings;
}

/** Read each Pod's status once it is Ready and keep its step breakdown. */
async function recordSteps(
  kind: "sandbox" | "pod",
  namespace: string,
  timings: Map<string, Timing>,
) {
  const owners = new Map<string, string>();
  if (kind === "sandbox") {
    const list = (await objects.listNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: SANDBOX_PLURAL,
    })) as { items: { metadata: { name: string; creationTimestamp: string } }[] };
    for (const s of list.items) owners.set(s.metadata.name, s.metadata.creationTimestamp);
  }
  for (const pod of (await core.listNamespacedPod({ namespace })).items) {
    const name = pod.metadata!.name!;
    const t = timings.get(name);
    if (!t) continue;
    const start = new Date(owners.get(name) ?? pod.metadata!.creationTimestamp!).getTime();
    t.steps = stepDurations(stepTimes(pod, owners.get(name)), start);
    t.restarts = [
      ...(pod.status?.initContainerStatuses ?? []),
      ...(pod.status?.containerStatuses ?? []),
    ]
      .map((c) => c.restartCount ?? 0)
      .reduce((a, b) => a + b, 0);
  }
}

/** p50 of each step over the Pods that went through it. */
function stepMedians(m: Map<string, Timing>) {
  const out: Record<string, number> = {};
  for (const s of STEPS) {
    const v = [...m.values()].map((t) => t.steps?.[s]).filter((x): x is number => x !== undefined);
    if (v.length) out[s] = percentiles(v).p50;
  }
  return out;
}

function percentiles(values: number[]) {
  const p = (q: number) => Math.round(percentile(values, q));
  return { p50: p(50), p99: p(99), max: p(100) };
}

const loadBefore = loadavg();
try {
  const { pods, sandboxes } = await measureBoth();
  const summary = (m: Map<string, Timing>) => ({
    running: percentiles([...m.values()].map((t) => t.running!)),
    ready: percentiles([...m.values()].map((t) => t.ready!)),
  });
  const bare = summary(pods);
  const sbx = summary(sandboxes);
  const results = {
    date: new Date().toISOString(),
    n: N,
    wave: WAVE,
    resources: RESOURCES,
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      kernel: release(),
    },
    versions: {
      kubelet: execFileSync(join(node.binDir, "kubelet"), ["--version"], {
        encoding: "utf8",
      }).trim(),
      containerd: execFileSync("containerd", ["--version"], { encoding: "utf8" }).trim(),
      runc: execFileSync("runc", ["--version"], { encoding: "utf8" }).split("\n")[0],
    },
    /** 1/5/15-minute load averages before and after: the machine is shared. */
    load: {
      before: loadBefore.map((x) => +x.toFixed(2)),
      after: loadavg().map((x) => +x.toFixed(2)),
    },
    nodeStartupMs: node.timings.total,
    barePodMs: bare,
    sandboxMs: sbx,
    /** p50 per step (ms, second resolution), each from the step before (bench/node/breakdown.ts). */
    stepsP50: { barePod: stepMedians(pods), sandbox: stepMedians(sandboxes) },
    /** CPU each Pod's own cgroup used from creation to Ready, p50 (ms). */
    podCpuMsP50: {
      barePod: percentiles(
        [...pods.values()].flatMap((t) => (t.cpuMs === undefined ? [] : [t.cpuMs])),
      ).p50,
      sandbox: percentiles(
        [...sandboxes.values()].flatMap((t) => (t.cpuMs === undefined ? [] : [t.cpuMs])),
      ).p50,
    },
    /** The node's cgroup root competes with every host process at cpu.shares 1024. */
    nodeCgroupCpuShares: Number(
      readFileSync(
        `/sys/fs/cgroup/cpu/sbxnode-${node.name.replace(/^sbx-node-/, "")}/cpu.shares`,
        "utf8",
      ),
    ),
    restarts: {
      barePod: [...pods.values()].reduce((a, t) => a + (t.restarts ?? 0), 0),
      sandbox: [...sandboxes.values()].reduce((a, t) => a + (t.restarts ?? 0), 0),
    },
    ratio: {
      running: +(sbx.running.p50 / bare.running.p50).toFixed(2),
      ready: +(sbx.ready.p50 / bare.ready.p50).toFixed(2),
    },
  };
  writeFileSync(args.out!, `${JSON.stringify(results, null, 2)}\n`);
  log(
    `N=${N}  bare Pod running p50/p99 ${bare.running.p50}/${bare.running.p99} ms, ready ${bare.ready.p50}/${bare.ready.p99} ms`,
  );
  log(
    `N=${N}  sandbox  running p50/p99 ${sbx.running.p50}/${sbx.running.p99} ms, ready ${sbx.ready.p50}/${sbx.ready.p99} ms`,
  );
  log(`steps p50 (ms): bare ${JSON.stringify(results.stepsP50.barePod)}`);
  log(`steps p50 (ms): sandbox ${JSON.stringify(results.stepsP50.sandbox)}`);
  log(`Pod cgroup CPU to Ready p50 (ms): ${JSON.stringify(results.podCpuMsP50)}`);
  log(
    `ratio (p50) running ${results.ratio.running}x, ready ${results.ratio.ready}x -> ${args.out}`,
  );
} finally {
  await controller.stop();
  await node.stop();
  await cp.stop();
}
