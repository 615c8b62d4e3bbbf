// Workspace benchmark (docker backend): suspend and resume latency with a
// 1 GiB workspace, as a user sees them (patch spec.suspended -> the Sandbox
// reports Suspended / Running and Ready), and snapshot and restore throughput
// of that workspace (the docker backend's tar copy with SHA-256, then a
// restore into a fresh volume, digest checked). Snapshots are driven through
// the backend's DockerSnapshots directly: no SandboxSnapshot controller yet.
// Prints a table, writes bench/results/workspace.json.
//
//   npm run bench:workspace [-- --cycles 10 --size-mib 1024]
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { Registry } from "prom-client";
import { API_VERSION, GROUP, SANDBOX_KIND, SANDBOX_PLURAL, VERSION } from "../../src/api/group.js";
import { DockerSnapshots } from "../../src/backends/docker/snapshots.js";
import { createLogger } from "../../src/observability/logger.js";
import { startSandboxController } from "../../src/sandbox/controller.js";
import { startControlPlane } from "../../test/support/control-plane.js";
import { docker, ensureDockerd, OPERATOR_IMAGE, SANDBOX_IMAGE } from "../../test/support/docker.js";
import { REPO_ROOT } from "../../test/support/paths.js";
import { percentile } from "../support/stats.js";

const exec = promisify(execFile);
const { values } = parseArgs({
  options: {
    cycles: { type: "string", default: "10" },
    "size-mib": { type: "string", default: "1024" },
  },
});
const CYCLES = Number(values.cycles);
const SIZE_MIB = Number(values["size-mib"]);
const OWNER = "bench-ws";
const POLL_MS = 25;

const round = (n: number, d = 1) => Number(n.toFixed(d));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const engine = await ensureDockerd();
  const cp = await startControlPlane({ controllerManager: true, crds: true });
  const kc = cp.kubeConfig();
  const objects = kc.makeApiClient(k8s.CustomObjectsApi);
  await kc.makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: "bench" } } });
  const controller = await startSandboxController({
    kubeConfig: kc,
    namespaces: ["bench"],
    defaultBackend: "docker",
    egressImage: OPERATOR_IMAGE,
    concurrency: 4,
    stallTimeoutSeconds: 300,
    docker: {
      client: engine,
      settings: { owner: OWNER, upstreamDns: "127.0.0.1", publishAddress: "127.0.0.1" },
    },
    registry: new Registry(),
    log: createLogger({ level: "warn" }),
  });
  const ref = { group: GROUP, version: VERSION, namespace: "bench", plural: SANDBOX_PLURAL };
  type Stored = {
    metadata: { uid: string; name: string };
    status?: {
      phase?: string;
      conditions?: { type: string; status: string }[];
      workspace?: { name: string };
    };
  };
  const get = () => objects.getNamespacedCustomObject({ ...ref, name: "ws" }) as Promise<Stored>;
  const until = async (ok: (s: Stored) => boolean, timeoutMs = 300_000) => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const s = await get();
      if (ok(s)) return s;
      if (Date.now() > end) throw new Error(`timed out: ${JSON.stringify(s.status)}`);
      await sleep(POLL_MS);
    }
  };
  const running = (s: Stored) =>
    s.status?.phase === "Running" &&
    !!s.status.conditions?.some((c) => c.type === "Ready" && c.status === "True");
  const suspended = (s: Stored) => s.status?.phase === "Suspended";
  const patch = (suspendedNow: boolean) =>
    objects.patchNamespacedCustomObject(
      { ...ref, name: "ws", body: { spec: { suspended: suspendedNow } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
  const restoreVolume = "bench-ws-restore";
  try {
    await objects.createNamespacedCustomObject({
      ...ref,
      body: {
        apiVersion: API_VERSION,
        kind: SANDBOX_KIND,
        metadata: { name: "ws" },
        spec: {
          image: SANDBOX_IMAGE,
          command: ["sleep", "infinity"],
          workspace: {},
          resources: { memory: "256Mi" },
        },
      },
    });
    let s = await until(running);
    const workload = `sbx.bench.ws.${s.metadata.uid.slice(0, 8)}`;
    const fill = await docker(
      [
        "exec",
        workload,
        "sh",
        "-c",
        `head -c ${SIZE_MIB}M /dev/urandom > /workspace/blob && sync && du -sm /workspace`,
      ],
      600_000,
    );
    if (fill.code !== 0) throw new Error(`fill: ${fill.stderr}`);
    console.log(`workspace filled: ${fill.stdout.trim()}`);

    const suspendMs: number[] = [];
    const resumeMs: number[] = [];
    for (let i = 0; i < CYCLES; i++) {
      let t = performance.now();
      await patch(true);
      s = await until(suspended);
      suspendMs.push(performance.now() - t);
      t = performance.now();
      await patch(false);
      s = await until(running);
      resumeMs.push(performance.now() - t);
      console.log(
        `cycle ${i + 1}: suspend ${Math.round(suspendMs.at(-1)!)} ms, resume ${Math.round(resumeMs.at(-1)!)} ms`,
      );
    }

    // Snapshot the suspended workspace, then restore it into a fresh volume.
    await patch(true);
    s = await until(suspended);
    const volume = s.status!.workspace!.name;
    const snapshots = new DockerSnapshots(engine, OPERATOR_IMAGE, OWNER);
    const snapRef = { namespace: "bench", name: "bench", uid: s.metadata.uid };
    await snapshots.remove(snapRef);
    let t = performance.now();
    const copy = await snapshots.take(snapRef, volume);
    const takeS = (performance.now() - t) / 1000;
    await docker(["volume", "rm", "-f", restoreVolume]);
    await engine.createVolume({ Name: restoreVolume });
    const target = await engine.createContainer({
      Image: SANDBOX_IMAGE,
      Cmd: ["true"],
      HostConfig: { Mounts: [{ Type: "volume", Source: restoreVolume, Target: "/workspace" }] },
    });
    t = performance.now();
    await snapshots.restore(copy.handle, copy.checksum, target.id, "/workspace");
    const restoreS = (performance.now() - t) / 1000;
    await target.remove({ force: true });
    await snapshots.remove(snapRef);

    const mib = copy.sizeBytes / 2 ** 20;
    const result = {
      date: new Date().toISOString(),
      machine: {
        cpus: cpus().length,
        model: cpus()[0]?.model,
        node: process.version,
        loadavg: loadavg().map((x) => round(x)),
      },
      docker: (await exec("docker", ["version", "--format", "{{.Server.Version}}"])).stdout.trim(),
      workspaceMiB: SIZE_MIB,
      cycles: CYCLES,
      pollMs: POLL_MS,
      suspendMs: {
        p50: Math.round(percentile(suspendMs, 50)),
        p99: Math.round(percentile(suspendMs, 99)),
      },
      resumeMs: {
        p50: Math.round(percentile(resumeMs, 50)),
        p99: Math.round(percentile(resumeMs, 99)),
      },
      snapshot: {
        tarBytes: copy.sizeBytes,
        checksum: copy.checksum,
        takeSeconds: round(takeS, 2),
        takeMiBps: round(mib / takeS),
        restoreSeconds: round(restoreS, 2),
        restoreMiBps: round(mib / restoreS),
      },
      notes:
        "suspend: patch spec.suspended=true until phase Suspended (containers removed, volume kept); resume: patch false until Running and Ready (sidecar lockdown, workload, agent). Snapshot: tar of the volume via the Engine's archive API, spooled to a temp file while hashed, then written into the snapshot volume; restore: streamed into a created container's volume, hashed on the way.",
    };
    console.table({
      "suspend (ms)": result.suspendMs,
      "resume (ms)": result.resumeMs,
    });
    console.table({
      snapshot: {
        MiB: round(mib),
        seconds: result.snapshot.takeSeconds,
        MiBps: result.snapshot.takeMiBps,
      },
      restore: {
        MiB: round(mib),
        seconds: result.snapshot.restoreSeconds,
        MiBps: result.snapshot.restoreMiBps,
      },
    });
    writeFileSync(
      join(REPO_ROOT, "bench/results/workspace.json"),
      `${JSON.stringify(result, null, 2)}\n`,
    );
  } finally {
    await objects.deleteNamespacedCustomObject({ ...ref, name: "ws" }).catch(() => undefined);
    for (let i = 0; i < 60; i++) {
      const gone = await get().then(
        () => false,
        () => true,
      );
      if (gone) break;
      await sleep(500);
    }
    await docker(["volume", "rm", "-f", restoreVolume]);
    await controller.stop();
    await cp.stop();
  }
}

await main();
