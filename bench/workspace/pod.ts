// Workspace benchmark on the pod backend, on the real node (test/support/node,
// PVCs of its local-path class): with a 1 GiB workspace,
//   - suspend (patch spec.suspended=true -> phase Suspended, the Pod gone) and
//     resume (patch false -> Running and Ready) latency, as a user sees them;
//   - beside them, in the same run on the same PVC, the baseline: a bare Pod
//     with the same image, command and claim deleted (-> gone) and created
//     (-> Ready), i.e. what releasing and taking back the compute costs
//     without the operator, the egress sidecar and the agent;
//   - resume on call: the sandbox suspended for idleness as the operator does
//     it, then an SDK exec `true` (pods/portforward) timed from the caller's
//     side, which resumes it and waits; beside the same call on the running
//     sandbox.
// Figures, not a timed test. Writes bench/results/workspace-pod.json.
//
//   flock /tmp/sbx-node.lock npm run bench:workspace:pod [-- --cycles 5 --size-mib 1024]
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { Registry } from "prom-client";
import { Sandbox } from "../../packages/sdk/src/index.js";
import { GROUP, SANDBOX_PLURAL, VERSION } from "../../src/api/group.js";
import { POD_STOP_GRACE_SECONDS } from "../../src/backends/pod/pod.js";
import { idleSuspendPatch } from "../../src/idle/wake.js";
import { loadKubeConfig } from "../../src/kube/config.js";
import { createLogger } from "../../src/observability/logger.js";
import { startSandboxController } from "../../src/sandbox/controller.js";
import { startControlPlane } from "../../test/support/control-plane.js";
import { OPERATOR_IMAGE, SANDBOX_IMAGE } from "../../test/support/docker.js";
import { NODE_CONTROLLERS, startNode } from "../../test/support/node/index.js";
import { NODE_SANDBOX_IMAGE } from "../../test/support/node/pods.js";
import { REPO_ROOT } from "../../test/support/paths.js";
import { percentile } from "../support/stats.js";

const { values: args } = parseArgs({
  options: {
    cycles: { type: "string", default: "5" },
    "size-mib": { type: "string", default: "1024" },
    out: { type: "string", default: join(REPO_ROOT, "bench/results/workspace-pod.json") },
  },
});
const CYCLES = Number(args.cycles);
const SIZE_MIB = Number(args["size-mib"]);
const NS = "bench-ws";
const NAME = "ws";
const CLAIM = `${NAME}-workspace`;
const RESOURCES = { cpu: "100m", memory: "128Mi" };
const COMMAND = ["sleep", "infinity"];
const POLL_MS = 25;
const log = (line: string) => process.stderr.write(`[bench:workspace:pod] ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const stats = (s: number[]) => ({
  p50: Math.round(percentile(s, 50)),
  p99: Math.round(percentile(s, 99)),
  n: s.length,
});

const loadBefore = loadavg();
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
  kubeConfig: loadKubeConfig({ kubeconfig: cp.kubeconfigPath, qps: 50, burst: 100 }),
  namespaces: [NS],
  defaultBackend: "pod",
  egressImage: OPERATOR_IMAGE,
  concurrency: 4,
  stallTimeoutSeconds: 300,
  registry: new Registry(),
  log: createLogger({ level: "warn" }),
});
const ref = { group: GROUP, version: VERSION, namespace: NS, plural: SANDBOX_PLURAL };
type Stored = {
  metadata: { uid: string };
  spec: { suspended?: boolean };
  status?: { phase?: string; conditions?: { type: string; status: string }[] };
};
const get = () => objects.getNamespacedCustomObject({ ...ref, name: NAME }) as Promise<Stored>;
const pod = (name: string) =>
  core.readNamespacedPod({ name, namespace: NS }).catch(() => undefined as k8s.V1Pod | undefined);
async function until(what: string, ok: () => Promise<boolean>, timeoutMs = 300_000) {
  const end = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(POLL_MS);
  }
}
const ready = (s: Stored) =>
  s.status?.phase === "Running" &&
  !!s.status.conditions?.some((c) => c.type === "Ready" && c.status === "True");
const podReady = (p: k8s.V1Pod | undefined) =>
  !!p?.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True");
const patch = (body: object) =>
  objects.patchNamespacedCustomObject(
    { ...ref, name: NAME, body },
    k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
  );
const timed = async (fn: () => Promise<unknown>) => {
  const t = performance.now();
  await fn();
  return performance.now() - t;
};

const suspendMs: number[] = [];
const resumeMs: number[] = [];
const bareDeleteMs: number[] = [];
const bareCreateMs: number[] = [];
const onCallMs: number[] = [];
const runningCallMs: number[] = [];
let box: Sandbox | undefined;
try {
  await core.createNamespace({ body: { metadata: { name: NS } } });
  box = await Sandbox.create(
    {
      image: NODE_SANDBOX_IMAGE,
      command: COMMAND,
      resources: RESOURCES,
      workspace: { volume: { size: `${SIZE_MIB + 256}Mi` } },
    },
    { kubeconfig: kc, namespace: NS, name: NAME, waitUntilReady: 300_000 },
  );
  const fill = await box.exec([
    "sh",
    "-c",
    `head -c ${SIZE_MIB}M /dev/urandom > /workspace/blob && sync && du -sm /workspace`,
  ]);
  if (fill.exitCode !== 0) throw new Error(`fill: ${fill.stderr}`);
  log(`workspace filled: ${fill.stdout.trim()}`);

  const suspend = async () => {
    await patch({ spec: { suspended: true } });
    await until("Suspended", async () => (await get()).status?.phase === "Suspended");
  };
  const bare: k8s.V1Pod = {
    metadata: { name: "bare" },
    spec: {
      restartPolicy: "Never",
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 10,
      containers: [
        {
          name: "main",
          image: NODE_SANDBOX_IMAGE,
          command: COMMAND,
          resources: { requests: RESOURCES, limits: RESOURCES },
          volumeMounts: [{ name: "workspace", mountPath: "/workspace" }],
        },
      ],
      volumes: [{ name: "workspace", persistentVolumeClaim: { claimName: CLAIM } }],
    },
  };
  for (let i = 0; i < CYCLES; i++) {
    suspendMs.push(await timed(suspend));
    // The baseline on the same claim while the sandbox sleeps (RWO: one Pod at a time).
    bareCreateMs.push(
      await timed(async () => {
        await core.createNamespacedPod({ namespace: NS, body: bare });
        await until("bare Pod Ready", async () => podReady(await pod("bare")));
      }),
    );
    bareDeleteMs.push(
      await timed(async () => {
        // The operator's grace period: a Pod gone is a Pod stopped, for both.
        await core.deleteNamespacedPod({
          name: "bare",
          namespace: NS,
          gracePeriodSeconds: POD_STOP_GRACE_SECONDS,
        });
        await until("bare Pod gone", async () => (await pod("bare")) === undefined);
      }),
    );
    resumeMs.push(
      await timed(async () => {
        await patch({ spec: { suspended: false } });
        await until("Ready", async () => ready(await get()));
      }),
    );
    log(
      `cycle ${i + 1}: suspend ${Math.round(suspendMs.at(-1)!)} ms, resume ${Math.round(resumeMs.at(-1)!)} ms; bare Pod delete ${Math.round(bareDeleteMs.at(-1)!)} ms, create ${Math.round(bareCreateMs.at(-1)!)} ms; load ${loadavg()[0]!.toFixed(1)}`,
    );
  }

  // Resume on call: asleep the way the idle check leaves it, then one SDK call.
  for (let i = 0; i < CYCLES; i++) {
    for (let j = 0; j < 3; j++) runningCallMs.push(await timed(() => box!.exec(["true"])));
    const uid = (await get()).metadata.uid;
    await patch(idleSuspendPatch(uid));
    await until(
      "idle-suspended, Pod gone",
      async () => (await get()).status?.phase === "Suspended" && (await pod(NAME)) === undefined,
    );
    onCallMs.push(
      await timed(async () => {
        const r = await box!.exec(["true"]);
        if (r.exitCode !== 0) throw new Error("exec failed");
      }),
    );
    log(`resume on call ${i + 1}: ${Math.round(onCallMs.at(-1)!)} ms`);
  }
  const digest = await box.exec(["sh", "-c", "du -sm /workspace/blob"]);
  const results = {
    date: new Date().toISOString(),
    backend: "pod",
    workspaceMiB: SIZE_MIB,
    storageClass: "local-path (test/support/node/storage.ts)",
    cycles: CYCLES,
    pollMs: POLL_MS,
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      kernel: release(),
      node: process.version,
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
    workspaceAfter: digest.stdout.trim(),
    suspendMs: stats(suspendMs),
    resumeMs: stats(resumeMs),
    baseline: { barePodDeleteMs: stats(bareDeleteMs), barePodCreateMs: stats(bareCreateMs) },
    ratio: {
      suspend: +(percentile(suspendMs, 50) / percentile(bareDeleteMs, 50)).toFixed(2),
      resume: +(percentile(resumeMs, 50) / percentile(bareCreateMs, 50)).toFixed(2),
    },
    resumeOnCallMs: stats(onCallMs),
    runningCallMs: stats(runningCallMs),
    notes:
      "suspend: patch spec.suspended=true until phase Suspended (Pod deleted, PVC kept); resume: patch false until Running and Ready (egress init, sidecar, workload, agent). Baseline: a bare Pod with the same image, command and claim, delete (the operator's grace period, POD_STOP_GRACE_SECONDS; the same `sleep` ignores SIGTERM) until gone and create until Ready, on the same node in the same run. Resume on call: the idle-suspension patch, wait until the Pod is gone, then an SDK exec `true` over pods/portforward from the caller's side (resume, wait for Ready and the agent, the call); running: the same call on the running sandbox.",
  };
  writeFileSync(args.out!, `${JSON.stringify(results, null, 2)}\n`);
  console.log(JSON.stringify(results, null, 2));
} finally {
  box?.close();
  await controller.stop();
  await node.stop();
  await cp.stop();
}
