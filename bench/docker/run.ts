// Docker backend benchmark: apply -> Running latency (p50/p99, one at a time)
// and sandboxes/s at concurrency 10, each beside a baseline measured in the
// same run: plain `docker` CLI commands building the same arrangement (a
// network, the egress sidecar from the operator image waited on until its
// lockdown is in, the workload joined to its network namespace). Goal:
// latency <= 1.3x the baseline. Prints a table, writes bench/results/docker.json.
//
//   npm run bench:docker [-- --sandboxes 50 --throughput 30]
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { Registry } from "prom-client";
import { API_VERSION, GROUP, SANDBOX_KIND, SANDBOX_PLURAL, VERSION } from "../../src/api/group.js";
import { OPERATOR_MAIN } from "../../src/backends/docker/containers.js";
import { createLogger } from "../../src/observability/logger.js";
import { startSandboxController } from "../../src/sandbox/controller.js";
import { startControlPlane } from "../../test/support/control-plane.js";
import { docker, ensureDockerd, OPERATOR_IMAGE, SANDBOX_IMAGE } from "../../test/support/docker.js";
import { REPO_ROOT } from "../../test/support/paths.js";
import { percentile, pool } from "../support/stats.js";

const exec = promisify(execFile);
const { values } = parseArgs({
  options: {
    sandboxes: { type: "string", default: "50" },
    throughput: { type: "string", default: "30" },
  },
});
const N = Number(values.sandboxes);
const THROUGHPUT_N = Number(values.throughput);
const CONCURRENCY = 10;
const OWNER = "bench";
/** Stands in for a resolver: nothing is resolved in this benchmark. */
const DNS = "127.0.0.1";

/** The policy the baseline's sidecar reads, as the operator would deliver it. */
const POLICY_DIR = mkdtempSync(join(tmpdir(), "bench-policy-"));
writeFileSync(join(POLICY_DIR, "policy.json"), '{"defaultAction":"deny","rules":[]}\n');

const round = (n: number, d = 2) => Number(n.toFixed(d));
const pct = percentile;

// ---- baseline: the same arrangement by hand with the docker CLI

async function must(args: string[]): Promise<string> {
  const r = await docker(args, 120_000);
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

async function plainDockerRun(name: string): Promise<number> {
  const started = performance.now();
  await must([
    "network",
    "create",
    "-o",
    "com.docker.network.bridge.enable_icc=false",
    `${name}.net`,
  ]);
  await must([
    "create",
    "--name",
    `${name}.egress`,
    "--network",
    `${name}.net`,
    "--user",
    "0:0",
    "--cap-drop",
    "ALL",
    "--cap-add",
    "NET_ADMIN",
    "--cap-add",
    "NET_RAW",
    "--cap-add",
    "SETUID",
    "--cap-add",
    "SETGID",
    "--security-opt",
    "no-new-privileges",
    "--pids-limit",
    "128",
    "--memory",
    "128m",
    "--entrypoint",
    "node",
    OPERATOR_IMAGE,
    OPERATOR_MAIN,
    "egress",
    "--lockdown",
    "--sidecar-uid=1337",
    "--policy-file=/etc/sandbox-egress/policy.json",
    `--upstream-dns=${DNS}`,
  ]);
  await must(["cp", POLICY_DIR, `${name}.egress:/etc/sandbox-egress`]);
  await must(["start", `${name}.egress`]);
  // Wait for the lockdown, as the operator does, before the workload may start.
  await new Promise<void>((resolve, reject) => {
    const logs = execFile("docker", ["logs", "-f", `${name}.egress`]);
    const onData = (d: Buffer) => {
      if (String(d).includes("egress sidecar ready")) {
        logs.kill();
        resolve();
      }
    };
    logs.stdout?.on("data", onData);
    logs.stderr?.on("data", onData);
    logs.once("exit", () => reject(new Error(`${name}.egress exited before it was ready`)));
  }).catch(() => undefined);
  await must([
    "run",
    "-d",
    "--name",
    name,
    "--network",
    `container:${name}.egress`,
    "--user",
    "1000:1000",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--pids-limit",
    "1024",
    "--memory",
    "1g",
    "--cpus",
    "1",
    "--init",
    "--tmpfs",
    "/tmp",
    SANDBOX_IMAGE,
    "sleep",
    "3600",
  ]);
  return performance.now() - started;
}

async function removePlain(name: string): Promise<void> {
  await docker(["rm", "-f", name, `${name}.egress`]);
  await docker(["network", "rm", `${name}.net`]);
}

// ---- ours: apply a Sandbox, wait until it reports Running

async function main(): Promise<void> {
  const engine = await ensureDockerd();
  const cp = await startControlPlane({ controllerManager: true, crds: true });
  const kc = cp.kubeConfig();
  const objects = kc.makeApiClient(k8s.CustomObjectsApi);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const namespace = "bench";
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  const controller = await startSandboxController({
    kubeConfig: kc,
    namespaces: [namespace],
    defaultBackend: "docker",
    egressImage: OPERATOR_IMAGE,
    concurrency: CONCURRENCY,
    stallTimeoutSeconds: 300,
    docker: {
      client: engine,
      settings: { owner: OWNER, upstreamDns: DNS, publishAddress: "127.0.0.1" },
    },
    registry: new Registry(),
    log: createLogger({ level: "warn" }),
  });
  const ref = { group: GROUP, version: VERSION, namespace, plural: SANDBOX_PLURAL };

  // One watch tells every waiter when its sandbox runs: polling would load the
  // apiserver (and this 2-core machine) in a way the baseline is not loaded.
  const waiters = new Map<string, { resolve(): void; reject(err: Error): void }>();
  const notify = (s: {
    metadata: { name: string };
    status?: { phase?: string; message?: string };
  }) => {
    const waiter = waiters.get(s.metadata.name);
    if (s.status?.phase === "Running") waiter?.resolve();
    if (s.status?.phase === "Failed")
      waiter?.reject(new Error(`${s.metadata.name}: ${s.status.message}`));
  };
  let watch: AbortController | undefined;
  let stopped = false;
  // A fresh apiserver may refuse the first watch (429 while its flow control
  // settles): re-open, and list once so nothing that happened meanwhile is missed.
  const openWatch = async (): Promise<void> => {
    if (stopped) return;
    watch = await new k8s.Watch(kc).watch(
      `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${SANDBOX_PLURAL}`,
      {},
      (_type, s) => notify(s),
      () => void setTimeout(() => void openWatch(), 200),
    );
    const list = await objects.listNamespacedCustomObject(ref);
    for (const s of list.items) notify(s);
  };
  await openWatch();

  async function applyToRunning(name: string): Promise<number> {
    const started = performance.now();
    const running = new Promise<void>((resolve, reject) => waiters.set(name, { resolve, reject }));
    await objects.createNamespacedCustomObject({
      ...ref,
      body: {
        apiVersion: API_VERSION,
        kind: SANDBOX_KIND,
        metadata: { name },
        spec: { image: SANDBOX_IMAGE, command: ["sleep", "3600"] },
      },
    });
    await running;
    waiters.delete(name);
    return performance.now() - started;
  }
  async function deleteAll(): Promise<void> {
    const list = await objects.listNamespacedCustomObject(ref);
    await Promise.all(
      list.items.map((s: { metadata: { name: string } }) =>
        objects.deleteNamespacedCustomObject({ ...ref, name: s.metadata.name }),
      ),
    );
    for (;;) {
      const left = await objects.listNamespacedCustomObject(ref);
      if (left.items.length === 0) return;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  try {
    // Warm both paths once (image layers, node's module cache).
    await removePlain("bench-warm").catch(() => undefined);
    await plainDockerRun("bench-warm");
    await removePlain("bench-warm");
    await applyToRunning("warm");
    await deleteAll();

    // Latency, one at a time, interleaved so drift hits both alike.
    const plain: number[] = [];
    const ours: number[] = [];
    // Each is removed once measured: a network per sandbox would exhaust a
    // default-configured dockerd's address pools (~30 networks).
    for (let i = 0; i < N; i++) {
      plain.push(await plainDockerRun(`bench-plain-${i}`));
      await removePlain(`bench-plain-${i}`);
      ours.push(await applyToRunning(`lat-${i}`));
      await deleteAll();
    }

    // Throughput at concurrency 10.
    const names = Array.from({ length: THROUGHPUT_N }, (_, i) => i);
    let t = performance.now();
    await pool(names, CONCURRENCY, async (i) => void (await plainDockerRun(`bench-tp-${i}`)));
    const plainRate = THROUGHPUT_N / ((performance.now() - t) / 1000);
    await pool(
      names.map((i) => `bench-tp-${i}`),
      4,
      removePlain,
    );
    t = performance.now();
    await pool(names, CONCURRENCY, async (i) => void (await applyToRunning(`tp-${i}`)));
    const ourRate = THROUGHPUT_N / ((performance.now() - t) / 1000);
    await deleteAll();

    const result = {
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
      docker: (await exec("docker", ["version", "--format", "{{.Server.Version}}"])).stdout.trim(),
      sandboxes: N,
      latencyMs: {
        plainDocker: { p50: round(pct(plain, 50), 0), p99: round(pct(plain, 99), 0) },
        sandbox: { p50: round(pct(ours, 50), 0), p99: round(pct(ours, 99), 0) },
        ratio: {
          p50: round(pct(ours, 50) / pct(plain, 50)),
          p99: round(pct(ours, 99) / pct(plain, 99)),
        },
        goal: "ratio <= 1.3",
      },
      throughputPerSecond: {
        concurrency: CONCURRENCY,
        sandboxes: THROUGHPUT_N,
        plainDocker: round(plainRate),
        sandbox: round(ourRate),
        ratio: round(ourRate / plainRate),
      },
    };
    console.table({
      "apply→Running p50 (ms)": {
        plain: result.latencyMs.plainDocker.p50,
        sandbox: result.latencyMs.sandbox.p50,
        ratio: result.latencyMs.ratio.p50,
      },
      "apply→Running p99 (ms)": {
        plain: result.latencyMs.plainDocker.p99,
        sandbox: result.latencyMs.sandbox.p99,
        ratio: result.latencyMs.ratio.p99,
      },
      [`sandboxes/s @${CONCURRENCY}`]: {
        plain: result.throughputPerSecond.plainDocker,
        sandbox: result.throughputPerSecond.sandbox,
        ratio: result.throughputPerSecond.ratio,
      },
    });
    writeFileSync(
      join(REPO_ROOT, "bench/results/docker.json"),
      `${JSON.stringify(result, null, 2)}\n`,
    );
  } finally {
    await deleteAll().catch(() => undefined);
    stopped = true;
    watch?.abort();
    await controller.stop();
    await cp.stop();
  }
}

await main();
