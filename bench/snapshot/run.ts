// Snapshot and restore throughput through the SandboxSnapshot controller, as
// a user sees them, on either backend:
//
//   take:    create a SandboxSnapshot of a sandbox whose workspace holds
//            SIZE MiB of random data -> status.phase Ready;
//   restore: create a Sandbox with workspace.fromSnapshot -> Running and
//            Ready (the copy into its new workspace, then the sandbox's start),
//            against a baseline: the same Sandbox with an empty workspace;
//            the restored file's SHA-256 must equal the source's.
//
// docker: the real dockerd (a tar of the volume via the Engine's archive API,
// hashed). pod: the real node with the CSI hostpath driver and
// external-snapshotter (test/support/node; a VolumeSnapshot, restored as a
// PVC dataSource). Writes bench/results/snapshot-<backend>.json.
//
//   npm run bench:snapshot -- --backend docker|pod [--size-mib 256 --reps 3]
//   (hold /tmp/sbx-docker.lock for docker, /tmp/sbx-node.lock for pod)
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { Registry } from "prom-client";
import {
  API_VERSION,
  GROUP,
  SANDBOX_KIND,
  SANDBOX_PLURAL,
  SNAPSHOT_KIND,
  SNAPSHOT_PLURAL,
  VERSION,
} from "../../src/api/group.js";
import type { SandboxSnapshot } from "../../src/api/snapshot.js";
import { loadKubeConfig } from "../../src/kube/config.js";
import { createLogger } from "../../src/observability/logger.js";
import { startSandboxController } from "../../src/sandbox/controller.js";
import { startSnapshotController } from "../../src/snapshot/start.js";
import { buildAgent } from "../../test/support/agent.js";
import { type ControlPlane, startControlPlane } from "../../test/support/control-plane.js";
import { docker, ensureDockerd, OPERATOR_IMAGE, SANDBOX_IMAGE } from "../../test/support/docker.js";
import { NODE_SANDBOX_IMAGE } from "../../test/support/node/pods.js";
import { REPO_ROOT } from "../../test/support/paths.js";
import { runCommand } from "../../test/support/run-command.js";

const exec = promisify(execFile);
const { values } = parseArgs({
  options: {
    backend: { type: "string", default: "docker" },
    "size-mib": { type: "string", default: "256" },
    reps: { type: "string", default: "3" },
  },
});
const BACKEND = values.backend as "docker" | "pod";
if (BACKEND !== "docker" && BACKEND !== "pod") throw new Error("--backend docker|pod");
const SIZE_MIB = Number(values["size-mib"]);
const REPS = Number(values.reps);
const OWNER = "bench-snapshot";
const NS = "bench";
const POLL_MS = 50;
const log = (line: string) => process.stderr.write(`[bench:snapshot] ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (n: number, d = 2) => Number(n.toFixed(d));

interface Rig {
  cp: ControlPlane;
  /** Runs `script` in the sandbox's workload as its user; stdout. */
  inWorkload(name: string, script: string): Promise<string>;
  workspace(): Record<string, unknown>;
  versions: Record<string, string>;
  stop(): Promise<void>;
}

async function dockerRig(): Promise<Rig> {
  buildAgent();
  const engine = await ensureDockerd();
  const cp = await startControlPlane({ controllerManager: true, crds: true });
  const kc = loadKubeConfig({ kubeconfig: cp.kubeconfigPath, qps: 100, burst: 200 });
  const common = {
    kubeConfig: kc,
    namespaces: [NS],
    defaultBackend: "docker" as const,
    concurrency: 4,
    registry: new Registry(),
    log: createLogger({ level: "warn" }),
  };
  const sandboxes = await startSandboxController({
    ...common,
    egressImage: OPERATOR_IMAGE,
    stallTimeoutSeconds: 600,
    docker: {
      client: engine,
      settings: { owner: OWNER, upstreamDns: "127.0.0.1", publishAddress: "127.0.0.1" },
    },
  });
  const snapshots = await startSnapshotController({
    ...common,
    registry: new Registry(),
    docker: { client: engine, owner: OWNER, image: OPERATOR_IMAGE },
  });
  const objects = cp.kubeConfig().makeApiClient(k8s.CustomObjectsApi);
  return {
    cp,
    async inWorkload(name, script) {
      const s = (await objects.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: SANDBOX_PLURAL,
        namespace: NS,
        name,
      })) as { metadata: { uid: string } };
      const r = await docker(
        [
          "exec",
          "-u",
          "1000:1000",
          `sbx.${NS}.${name}.${s.metadata.uid.slice(0, 8)}`,
          "sh",
          "-c",
          script,
        ],
        600_000,
      );
      if (r.code !== 0) throw new Error(`${script}: ${r.stderr}`);
      return r.stdout.trim();
    },
    workspace: () => ({}),
    versions: {
      docker: (await exec("docker", ["version", "--format", "{{.Server.Version}}"])).stdout.trim(),
    },
    async stop() {
      await snapshots.stop();
      await sandboxes.stop();
      const left = await docker(["ps", "-aq", "--filter", `label=sandboxing.dev/owner=${OWNER}`]);
      for (const id of left.stdout.split("\n").filter(Boolean)) await docker(["rm", "-f", id]);
      const vols = await docker([
        "volume",
        "ls",
        "-q",
        "--filter",
        `label=sandboxing.dev/owner=${OWNER}`,
      ]);
      for (const v of vols.stdout.split("\n").filter(Boolean))
        await docker(["volume", "rm", "-f", v]);
      await cp.stop();
    },
  };
}

async function podRig(): Promise<Rig> {
  const { NODE_CONTROLLERS, startNode, CSI_CLASS } = await import(
    "../../test/support/node/index.js"
  );
  const cp = await startControlPlane({
    controllerManager: true,
    scheduler: true,
    crds: true,
    kubeletClient: true,
    extraControllers: NODE_CONTROLLERS,
  });
  const node = await startNode(cp, { images: [OPERATOR_IMAGE, SANDBOX_IMAGE], csi: true });
  log(`node ${node.name} Ready in ${node.timings.total} ms`);
  const kc = loadKubeConfig({ kubeconfig: cp.kubeconfigPath, qps: 100, burst: 200 });
  const common = {
    kubeConfig: kc,
    namespaces: [NS],
    defaultBackend: "pod" as const,
    concurrency: 4,
    registry: new Registry(),
    log: createLogger({ level: "warn" }),
  };
  const sandboxes = await startSandboxController({
    ...common,
    egressImage: OPERATOR_IMAGE,
    stallTimeoutSeconds: 600,
  });
  const snapshots = await startSnapshotController({ ...common, registry: new Registry() });
  const kubectl = (args: string[]) =>
    runCommand(join(cp.binDir, "kubectl"), ["--kubeconfig", cp.kubeconfigPath, ...args], 600_000);
  return {
    cp,
    async inWorkload(name, script) {
      const r = await kubectl(["exec", "-n", NS, name, "-c", "sandbox", "--", "sh", "-c", script]);
      if (r.code !== 0) throw new Error(`${script}: ${r.stderr}`);
      return r.stdout.trim();
    },
    workspace: () => ({
      volume: { storageClassName: CSI_CLASS, size: `${SIZE_MIB * 2}Mi` },
    }),
    versions: {
      kubelet: (await runCommand(join(node.binDir, "kubelet"), ["--version"])).stdout.trim(),
      externalSnapshotter: "v8.7.0 (hack/storage/csi/go.mod)",
      csiDriver: "hack/storage/csi/csi-hostpath (directories; snapshots as tar archives)",
    },
    async stop() {
      await snapshots.stop();
      await sandboxes.stop();
      await node.stop();
      await cp.stop();
    },
  };
}

async function main(): Promise<void> {
  const rig = BACKEND === "docker" ? await dockerRig() : await podRig();
  const kc = rig.cp.kubeConfig();
  const objects = kc.makeApiClient(k8s.CustomObjectsApi);
  await kc.makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: NS } } });
  const create = (plural: string, kind: string, name: string, spec: Record<string, unknown>) =>
    objects.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural,
      namespace: NS,
      body: { apiVersion: API_VERSION, kind, metadata: { name }, spec },
    });
  const get = <T>(plural: string, name: string) =>
    objects.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural,
      namespace: NS,
      name,
    }) as Promise<T>;
  const until = async <T>(
    what: string,
    probe: () => Promise<T | undefined>,
    timeoutMs = 900_000,
  ) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
      await sleep(POLL_MS);
    }
  };
  type Stored = {
    status?: { phase?: string; conditions?: { type: string; status: string }[] };
  };
  const running = (name: string) =>
    until(`${name} Running and Ready`, async () => {
      const s = await get<Stored>(SANDBOX_PLURAL, name);
      const ready = s.status?.conditions?.find((c) => c.type === "Ready")?.status === "True";
      return s.status?.phase === "Running" && ready ? s : undefined;
    });
  const sandbox = async (name: string, workspace: Record<string, unknown>) => {
    const began = performance.now();
    await create(SANDBOX_PLURAL, SANDBOX_KIND, name, {
      image: BACKEND === "docker" ? SANDBOX_IMAGE : NODE_SANDBOX_IMAGE,
      command: ["sleep", "3600"],
      resources: { cpu: "250m", memory: "128Mi" },
      workspace,
    });
    await running(name);
    return (performance.now() - began) / 1000;
  };

  const reps: Record<string, number | string>[] = [];
  for (let i = 0; i < REPS; i++) {
    const src = `src-${i}`;
    await sandbox(src, rig.workspace());
    const fill = performance.now();
    const sum = await rig.inWorkload(
      src,
      `head -c ${SIZE_MIB * 1048576} /dev/urandom > /workspace/data.bin && sync && sha256sum /workspace/data.bin | cut -d' ' -f1`,
    );
    log(`rep ${i}: ${SIZE_MIB} MiB written in ${round((performance.now() - fill) / 1000)} s`);

    const snap = `snap-${i}`;
    const t0 = performance.now();
    await create(SNAPSHOT_PLURAL, SNAPSHOT_KIND, snap, { source: { sandboxName: src } });
    const ready = await until(`${snap} Ready`, async () => {
      const s = await get<SandboxSnapshot>(SNAPSHOT_PLURAL, snap);
      if (s.status?.phase === "Failed") throw new Error(`${snap}: ${s.status.message}`);
      return s.status?.phase === "Ready" ? s : undefined;
    });
    const takeS = (performance.now() - t0) / 1000;

    const baselineS = await sandbox(`empty-${i}`, rig.workspace());
    const restoreS = await sandbox(`restored-${i}`, { fromSnapshot: { name: snap } });
    const restored = await rig.inWorkload(
      `restored-${i}`,
      "sha256sum /workspace/data.bin | cut -d' ' -f1",
    );
    if (restored !== sum) throw new Error(`rep ${i}: restored ${restored}, source ${sum}`);
    // Below half a second the difference is within the noise of a start itself.
    const copyS = restoreS - baselineS;
    const row = {
      takeSeconds: round(takeS),
      takeMiBps: round(SIZE_MIB / takeS, 1),
      restoreToReadySeconds: round(restoreS),
      emptyWorkspaceToReadySeconds: round(baselineS),
      restoreExtraSeconds: round(copyS),
      restoreMiBps: copyS >= 0.5 ? round(SIZE_MIB / copyS, 1) : "",
      sizeBytes: ready.status?.sizeBytes ?? "",
      checksum: ready.status?.checksum ?? "",
      sha256: sum,
    };
    log(`rep ${i}: ${JSON.stringify(row)}`);
    reps.push(row);
    for (const name of [src, `empty-${i}`, `restored-${i}`])
      await objects.deleteNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: SANDBOX_PLURAL,
        namespace: NS,
        name,
      });
    await objects.deleteNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: SNAPSHOT_PLURAL,
      namespace: NS,
      name: snap,
    });
  }
  const median = (k: string) => {
    const xs = reps.map((r) => Number(r[k])).sort((a, b) => a - b);
    return xs[Math.floor(xs.length / 2)]!;
  };
  const result = {
    date: new Date().toISOString(),
    backend: BACKEND,
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model.trim(),
      memGiB: round(totalmem() / 2 ** 30, 1),
      kernel: release(),
      node: process.version,
      loadavg: loadavg().map((l) => round(l, 1)),
    },
    versions: rig.versions,
    sizeMiB: SIZE_MIB,
    reps: REPS,
    median: {
      takeSeconds: median("takeSeconds"),
      takeMiBps: median("takeMiBps"),
      restoreToReadySeconds: median("restoreToReadySeconds"),
      emptyWorkspaceToReadySeconds: median("emptyWorkspaceToReadySeconds"),
      restoreExtraSeconds: median("restoreExtraSeconds"),
      restoreMiBps: reps.every((r) => r.restoreMiBps !== "") ? median("restoreMiBps") : "",
    },
    runs: reps,
    notes:
      "take: SandboxSnapshot created -> phase Ready (polled every 50 ms). restore: Sandbox with workspace.fromSnapshot created -> Running and Ready; restoreMiBps divides the size by (that time - the same Sandbox's time with an empty workspace, measured just before). The restored file's SHA-256 equals the source's in every run (checked). restoreMiBps is empty where the restore added under 0.5 s (within the noise of a start).",
  };
  const out = join(REPO_ROOT, `bench/results/snapshot-${BACKEND}.json`);
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result.median));
  log(`wrote ${out}`);
  await rig.stop();
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
