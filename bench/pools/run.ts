// Warm pool benchmark on the docker backend: claim -> Ready (p50/p99) warm
// and cold, claim -> first exec output through the SDK, a burst of claims
// (p50/p90 claim -> Ready), the pool's refill rate, and the idle footprint of
// a pooled sandbox (sidecar + agent + workload RSS). Figures, not a test:
// prints a table and writes bench/results/pools.json.
//
//   npm run bench:pools [-- --warm 20 --cold 5 --exec 10 --burst 30]
import { writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { Registry } from "prom-client";
import { Sandbox } from "../../packages/sdk/src/index.js";
import {
  API_VERSION,
  CLAIM_KIND,
  CLAIM_PLURAL,
  GROUP,
  POOL_KIND,
  POOL_PLURAL,
  TEMPLATE_KIND,
  TEMPLATE_PLURAL,
  VERSION,
} from "../../src/api/group.js";
import { createLogger } from "../../src/observability/logger.js";
import { startPoolControllers } from "../../src/pool/start.js";
import { startSandboxController } from "../../src/sandbox/controller.js";
import { buildAgent } from "../../test/support/agent.js";
import { startControlPlane } from "../../test/support/control-plane.js";
import {
  docker,
  ensureDockerd,
  labelled,
  OPERATOR_IMAGE,
  SANDBOX_IMAGE,
} from "../../test/support/docker.js";
import { REPO_ROOT } from "../../test/support/paths.js";
import { percentile } from "../support/stats.js";

const { values } = parseArgs({
  options: {
    warm: { type: "string", default: "20" },
    cold: { type: "string", default: "5" },
    exec: { type: "string", default: "10" },
    burst: { type: "string", default: "30" },
    pool: { type: "string", default: "3" },
  },
});
const OWNER = "bench-pools";
const NS = "bench";
const ms = (n: number) => Math.round(n);
const pct = percentile;
const stats = (xs: number[]) => ({
  n: xs.length,
  p50: ms(pct(xs, 50)),
  p90: ms(pct(xs, 90)),
  p99: ms(pct(xs, 99)),
});

async function main() {
  const engine = await ensureDockerd();
  buildAgent();
  const cp = await startControlPlane({ controllerManager: true, crds: true });
  const kc = cp.kubeConfig();
  const objects = kc.makeApiClient(k8s.CustomObjectsApi);
  await kc.makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: NS } } });
  const log = createLogger({ level: "warn" });
  const sandboxes = await startSandboxController({
    kubeConfig: kc,
    namespaces: [NS],
    defaultBackend: "docker",
    egressImage: OPERATOR_IMAGE,
    concurrency: 10,
    stallTimeoutSeconds: 300,
    docker: {
      client: engine,
      settings: { owner: OWNER, upstreamDns: "127.0.0.1", publishAddress: "127.0.0.1" },
    },
    registry: new Registry(),
    log,
  });
  const pools = await startPoolControllers({
    kubeConfig: kc,
    namespaces: [NS],
    defaultBackend: "docker",
    concurrency: 10,
    registry: new Registry(),
    log,
  });
  const ref = (plural: string) => ({ group: GROUP, version: VERSION, namespace: NS, plural });
  const create = (plural: string, kind: string, name: string, spec: unknown) =>
    objects.createNamespacedCustomObject({
      ...ref(plural),
      body: { apiVersion: API_VERSION, kind, metadata: { name }, spec },
    });

  // One watch on claims: each waiter learns its claim is Ready the moment the apiserver says so.
  const waiters = new Map<string, (c: { status?: { source?: string } }) => void>();
  const watch = await new k8s.Watch(kc).watch(
    `/apis/${GROUP}/${VERSION}/namespaces/${NS}/${CLAIM_PLURAL}`,
    {},
    (_type, obj: { metadata: { name: string }; status?: { phase?: string; source?: string } }) => {
      if (obj.status?.phase === "Ready") waiters.get(obj.metadata.name)?.(obj);
    },
    () => {},
  );
  let n = 0;
  const claim = async (spec: Record<string, unknown>) => {
    const name = `c${n++}`;
    const ready = new Promise<{ status?: { source?: string } }>((resolve) =>
      waiters.set(name, resolve),
    );
    const t0 = performance.now();
    await create(CLAIM_PLURAL, CLAIM_KIND, name, { templateRef: { name: "t" }, ...spec });
    const c = await ready;
    waiters.delete(name);
    return { name, ms: performance.now() - t0, source: c.status?.source };
  };
  const poolReady = async (want: number) => {
    for (;;) {
      const p = (await objects.getNamespacedCustomObject({ ...ref(POOL_PLURAL), name: "p" })) as {
        status?: { readyReplicas?: number; replicas?: number };
      };
      if (p.status?.readyReplicas === want && p.status.replicas === want) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const setReplicas = (replicas: number) =>
    objects.patchNamespacedCustomObject(
      { ...ref(POOL_PLURAL), name: "p", body: { spec: { replicas } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );

  const POOL = Number(values.pool);
  await create(TEMPLATE_PLURAL, TEMPLATE_KIND, "t", {
    backend: "docker",
    image: SANDBOX_IMAGE,
    command: ["sleep", "infinity"],
    resources: { cpu: "100m", memory: "64Mi" },
  });
  const fillStart = performance.now();
  await create(POOL_PLURAL, POOL_KIND, "p", {
    templateRef: { name: "t" },
    replicas: POOL,
    refill: { perSecond: 50, burst: 50 },
  });
  await poolReady(POOL);
  const fillMs = performance.now() - fillStart;

  // Idle footprint of one pooled sandbox: its containers' memory as the kernel counts it.
  const pooledContainers = await labelled("container", `sandboxing.dev/owner=${OWNER}`);
  const mem = await docker([
    "stats",
    "--no-stream",
    "--format",
    "{{.Name}} {{.MemUsage}}",
    ...pooledContainers,
  ]);
  const perContainer = mem.stdout
    .trim()
    .split("\n")
    .map((l) => l.trim());

  const egress = { rules: [{ action: "allow", target: "example.org", ports: [443] }] };
  const warm: number[] = [];
  const warmSources: string[] = [];
  for (let i = 0; i < Number(values.warm); i++) {
    await poolReady(POOL);
    const r = await claim({ egress });
    warm.push(r.ms);
    warmSources.push(r.source ?? "?");
    await new Promise((r) => setTimeout(r, 1000)); // 1 claim/s
  }
  const cold: number[] = [];
  for (let i = 0; i < Number(values.cold); i++) {
    const r = await claim({ egress, env: [{ name: "I", value: String(i) }] });
    cold.push(r.ms);
  }
  const execMs: number[] = [];
  for (let i = 0; i < Number(values.exec); i++) {
    await poolReady(POOL);
    const t0 = performance.now();
    const r = await claim({ egress });
    const c = (await objects.getNamespacedCustomObject({ ...ref(CLAIM_PLURAL), name: r.name })) as {
      status: { sandboxName: string };
    };
    const box = await Sandbox.get(c.status.sandboxName, {
      kubeconfig: kc,
      namespace: NS,
      docker: engine,
    });
    const out = await box.exec(["echo", "hi"]);
    if (out.stdout !== "hi\n") throw new Error(`exec said ${JSON.stringify(out)}`);
    execMs.push(performance.now() - t0);
  }

  // A burst: a pool as large as the burst, then every claim at once.
  const B = Number(values.burst);
  await setReplicas(B);
  const refillStart = performance.now();
  await poolReady(B);
  const refillMs = performance.now() - refillStart;
  const burst = await Promise.all(Array.from({ length: B }, () => claim({ egress })));
  const burstMs = burst.map((b) => b.ms);
  const burstSources = burst.reduce<Record<string, number>>((a, b) => {
    a[b.source ?? "?"] = (a[b.source ?? "?"] ?? 0) + 1;
    return a;
  }, {});

  const result = {
    machine: { cpus: cpus().length, loadavg: loadavg().map((x) => Number(x.toFixed(1))) },
    backend: "docker",
    pool: POOL,
    poolFillMs: ms(fillMs),
    warmClaimToReadyMs: { ...stats(warm), sources: warmSources },
    coldClaimToReadyMs: stats(cold),
    warmClaimToFirstExecOutputMs: stats(execMs),
    burst: {
      claims: B,
      refillToReadyMs: ms(refillMs),
      refillPerSecond: Number(((B - POOL) / (refillMs / 1000)).toFixed(1)),
      claimToReadyMs: stats(burstMs),
      sources: burstSources,
    },
    pooledSandboxMemory: perContainer,
  };
  console.log(JSON.stringify(result, null, 2));
  writeFileSync(
    join(REPO_ROOT, "bench/results/pools.json"),
    `${JSON.stringify(result, null, 2)}\n`,
  );

  watch.abort();
  await pools.stop();
  await sandboxes.stop();
  for (const kind of ["container", "network", "volume"] as const)
    for (const name of await labelled(kind, `sandboxing.dev/owner=${OWNER}`))
      await docker(kind === "container" ? ["rm", "-f", "-v", name] : [kind, "rm", name]);
  await cp.stop();
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
