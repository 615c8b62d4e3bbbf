// Warm pool benchmark, on the docker backend or the pod backend on the real
// node (with its live policy channel): claim -> Ready (p50/p90/p99) warm at
// concurrency 1, cold claims as the baseline in the same run, claim -> first
// exec output through the SDK's Sandbox.claim (docker), a burst of claims
// against a pool as large as the burst, a sustained rate of claims (claims/s
// for some seconds) against a pool large enough to serve it warm, the pool's
// refill rate, and the idle footprint of a pooled sandbox (docker). Every claim carries its own
// egress policy (a name rule), so Ready means that policy is in force.
// Figures, not a test: prints them and writes bench/results/pools[-pod].json.
//
//   npm run bench:pools [-- --backend docker --warm 30 --cold 5 --burst 300 --rate 50 --seconds 4]
//   npm run bench:pools -- --backend pod --burst 20 --rate 50 --seconds 0.4
import { execFileSync } from "node:child_process";
import { copyFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
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
import { podLiveEgress } from "../../src/claim/warm.js";
import { loadKubeConfig, unlimited } from "../../src/kube/config.js";
import { createLogger } from "../../src/observability/logger.js";
import { startPoolControllers } from "../../src/pool/start.js";
import { startSandboxController } from "../../src/sandbox/controller.js";
import { buildAgent } from "../../test/support/agent.js";
import { auditOffset } from "../../test/support/audit-log.js";
import { startControlPlane } from "../../test/support/control-plane.js";
import {
  docker,
  ensureDockerd,
  labelled,
  OPERATOR_IMAGE,
  SANDBOX_IMAGE,
} from "../../test/support/docker.js";
import { NODE_CONTROLLERS, startNode } from "../../test/support/node/index.js";
import { NODE_SANDBOX_IMAGE } from "../../test/support/node/pods.js";
import { REPO_ROOT } from "../../test/support/paths.js";
import { policyTls } from "../../test/support/policy-tls.js";
import { freePort } from "../../test/support/processes.js";
import { writeResult } from "../support/results.js";
import { percentile } from "../support/stats.js";
import { apiserverFloor } from "./burst-floor.js";
import { burstWrites } from "./burst-writes.js";
import { followClaims } from "./follow-claims.js";

const { values } = parseArgs({
  options: {
    backend: { type: "string", default: "docker" },
    warm: { type: "string", default: "30" },
    cold: { type: "string", default: "5" },
    exec: { type: "string", default: "10" },
    pool: { type: "string", default: "3" },
    /** Claims at once against a pool of as many ready sandboxes. */
    burst: { type: "string", default: "300" },
    /** Sustained claims per second, for `seconds`, against a pool of rate x seconds. */
    rate: { type: "string", default: "50" },
    seconds: { type: "string", default: "4" },
    out: { type: "string" },
    /**
     * "off": the claims read only what is stored of the Sandboxes, not the
     * Sandbox controller's status writes in flight (the wiring before
     * own-status-source.ts): a before/after in one session.
     */
    "claims-see-writes": { type: "string", default: "on" },
    /** Debug log of the controllers to this file (per key: queue wait, reconcile start/end), phases marked. */
    log: { type: "string" },
  },
});
const BACKEND = values.backend === "pod" ? "pod" : "docker";
const OWNER = "bench-pools";
const NS = "bench";
const ms = (n: number) => Math.round(n);
const stats = (xs: number[]) => ({
  n: xs.length,
  p50: ms(percentile(xs, 50)),
  p90: ms(percentile(xs, 90)),
  p99: ms(percentile(xs, 99)),
  max: ms(Math.max(...xs)),
});
const say = (line: string) => process.stderr.write(`[bench:pools] ${line}\n`);
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));
const version = (cmd: string, args: string[]) => {
  try {
    return execFileSync(cmd, args, { encoding: "utf8" }).trim().split("\n")[0];
  } catch {
    return undefined;
  }
};

async function main() {
  const loadBefore = loadavg();
  const engine = await ensureDockerd();
  if (BACKEND === "docker") buildAgent();
  const cp = await startControlPlane(
    BACKEND === "pod"
      ? {
          controllerManager: true,
          scheduler: true,
          crds: true,
          kubeletClient: true,
          extraControllers: NODE_CONTROLLERS,
        }
      : { controllerManager: true, crds: true },
  );
  const node =
    BACKEND === "pod"
      ? await startNode(cp, { images: [OPERATOR_IMAGE, SANDBOX_IMAGE] })
      : undefined;
  const kc = cp.kubeConfig();
  const objects = kc.makeApiClient(k8s.CustomObjectsApi);
  await kc.makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: NS } } });
  const log = values.log
    ? createLogger({ level: "debug", batch: { flushMs: 100, file: values.log } })
    : createLogger({ level: "warn" });
  const phase = (name: string) => log.info({ phase: name }, "bench phase");
  // The operator's own client limits (CLI defaults), not the test harness's.
  const operatorKc = loadKubeConfig({ kubeconfig: cp.kubeconfigPath, qps: 200, burst: 400 });
  const hostIp = node?.net.hostIp;
  const channelPort = hostIp ? await freePort() : 0;
  const sandboxes = await startSandboxController({
    kubeConfig: operatorKc,
    namespaces: [NS],
    defaultBackend: BACKEND,
    egressImage: OPERATOR_IMAGE,
    concurrency: 16,
    stallTimeoutSeconds: 300,
    ...(BACKEND === "docker"
      ? {
          docker: {
            client: engine,
            settings: {
              owner: OWNER,
              upstreamDns: "127.0.0.1",
              publishAddress: "127.0.0.1",
              // As the CLI sets it for a local daemon run as root; POLICY_UPLOAD=1 measures the upload.
              ...(process.env.POLICY_UPLOAD
                ? {}
                : { policyDir: `/run/sandbox-operator-bench/${OWNER}/policies` }),
            },
          },
        }
      : {}),
    ...(hostIp
      ? {
          policyChannel: {
            listen: { host: hostIp, port: channelPort },
            endpoint: { host: hostIp, port: channelPort },
            tls: policyTls([hostIp]),
          },
        }
      : {}),
    registry: new Registry(),
    log,
  });
  const pools = await startPoolControllers({
    kubeConfig: operatorKc,
    namespaces: [NS],
    defaultBackend: BACKEND,
    liveEgress: { pod: podLiveEgress(true) },
    // One Sandbox watch for both, as the operator's entry point wires them
    // (src/cli/controller.ts): a second would parse every Sandbox event twice.
    sandboxes: sandboxes.allSandboxes,
    ...(values["claims-see-writes"] === "off"
      ? {}
      : { sandboxStatusWrites: sandboxes.sandboxStatusWrites }),
    concurrency: 16,
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
  type Seen = { status?: { source?: string; readyMilliseconds?: number; sandboxName?: string } };
  const waiters = new Map<string, (c: Seen) => void>();
  const onClaim = (obj: {
    metadata: { name: string };
    status?: { phase?: string } & Seen["status"];
  }) => {
    if (obj.status?.phase === "Ready") waiters.get(obj.metadata.name)?.(obj);
  };
  const stopFollowing = await followClaims(kc, NS, () => waiters.keys(), onClaim);
  let n = 0;
  const claim = async (spec: Record<string, unknown>) => {
    const name = `c${n++}`;
    const ready = new Promise<Seen>((resolve) => waiters.set(name, resolve));
    const t0 = performance.now();
    await create(CLAIM_PLURAL, CLAIM_KIND, name, { templateRef: { name: "t" }, ...spec });
    const c = await ready;
    waiters.delete(name);
    return {
      name,
      ms: performance.now() - t0,
      source: c.status?.source ?? "?",
      sandbox: c.status?.sandboxName ?? "?",
      controllerMs: c.status?.readyMilliseconds,
    };
  };
  const poolStatus = async () =>
    (
      (await objects.getNamespacedCustomObject({ ...ref(POOL_PLURAL), name: "p" })) as {
        status?: { readyReplicas?: number; replicas?: number };
      }
    ).status;
  const poolReady = async (want: number) => {
    for (;;) {
      const s = await poolStatus();
      if (s?.readyReplicas === want && s.replicas === want) return;
      await sleep(100);
    }
  };
  const setReplicas = (replicas: number) =>
    objects.patchNamespacedCustomObject(
      { ...ref(POOL_PLURAL), name: "p", body: { spec: { replicas } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
  /** Deletes every claim made so far (their sandboxes go with them), without waiting. */
  const dropClaims = () =>
    objects.deleteCollectionNamespacedCustomObject({ ...ref(CLAIM_PLURAL) }).catch(() => {});
  const sourcesOf = (rs: { source: string }[]) =>
    rs.reduce<Record<string, number>>((a, r) => {
      a[r.source] = (a[r.source] ?? 0) + 1;
      return a;
    }, {});
  // Each claim its own policy: a name rule (the pooled sandbox has none).
  const egress = (i: number) => ({
    defaultAction: "deny" as const,
    rules: [{ action: "allow" as const, target: `c${i}.example.org`, ports: [443] }],
  });

  const POOL = Number(values.pool);
  await create(TEMPLATE_PLURAL, TEMPLATE_KIND, "t", {
    backend: BACKEND,
    image: BACKEND === "pod" ? NODE_SANDBOX_IMAGE : SANDBOX_IMAGE,
    command: ["sleep", "infinity"],
    resources: BACKEND === "pod" ? { cpu: "10m", memory: "64Mi" } : { cpu: "100m", memory: "64Mi" },
  });
  const fillStart = performance.now();
  await create(POOL_PLURAL, POOL_KIND, "p", {
    templateRef: { name: "t" },
    replicas: POOL,
    refill: { perSecond: 50, burst: 50 },
  });
  await poolReady(POOL);
  const fillMs = performance.now() - fillStart;
  say(`pool of ${POOL} ready in ${ms(fillMs)} ms`);

  // Idle footprint of one pooled sandbox: its containers' memory as the kernel counts it.
  let perContainer: string[] = [];
  if (BACKEND === "docker") {
    const pooledContainers = await labelled("container", `sandboxing.dev/owner=${OWNER}`);
    const mem = await docker([
      "stats",
      "--no-stream",
      "--format",
      "{{.Name}} {{.MemUsage}}",
      ...pooledContainers,
    ]);
    perContainer = mem.stdout
      .trim()
      .split("\n")
      .map((l) => l.trim());
  }

  // Concurrency 1, warm: one claim at a time, the pool full before each.
  const warm: Awaited<ReturnType<typeof claim>>[] = [];
  for (let i = 0; i < Number(values.warm); i++) {
    await poolReady(POOL);
    await sleep(300);
    warm.push(await claim({ egress: egress(n) }));
  }
  say(`warm c=1: ${JSON.stringify(stats(warm.map((w) => w.ms)))}`);
  // Cold, same run: env cannot be given to a running workload, so these start cold.
  const cold: number[] = [];
  for (let i = 0; i < Number(values.cold); i++) {
    const r = await claim({ egress: egress(n), env: [{ name: "I", value: String(i) }] });
    cold.push(r.ms);
  }
  say(`cold: ${JSON.stringify(stats(cold))}`);
  // Claim -> first exec output the way a user gets it: Sandbox.claim (watches
  // the claim and its sandbox, connects to the agent while the policy is
  // applied), then exec. Split at the handle: how much is the claim, how much
  // the first command.
  const execMs: number[] = [];
  const execClaimMs: number[] = [];
  const execFirstMs: number[] = [];
  const execSources: { source: string }[] = [];
  if (BACKEND === "docker") {
    for (let i = 0; i < Number(values.exec); i++) {
      await poolReady(POOL);
      const t0 = performance.now();
      const box = await Sandbox.claim("t", {
        kubeconfig: kc,
        namespace: NS,
        docker: engine,
        name: `c${n}`,
        egress: egress(n),
      });
      n++;
      const t1 = performance.now();
      const out = await box.exec(["echo", "hi"]);
      const t2 = performance.now();
      if (out.stdout !== "hi\n") throw new Error(`exec said ${JSON.stringify(out)}`);
      execMs.push(t2 - t0);
      execClaimMs.push(t1 - t0);
      execFirstMs.push(t2 - t1);
      execSources.push({ source: box.claim?.source ?? "?" });
      box.close();
    }
    say(`claim -> first exec output: ${JSON.stringify(stats(execMs))}`);
  }
  await dropClaims();

  // A burst: a pool as large as the burst, then every claim at once.
  const B = Number(values.burst);
  await setReplicas(B);
  const refillStart = performance.now();
  await poolReady(B);
  const refillMs = performance.now() - refillStart;
  say(`pool of ${B} ready in ${ms(refillMs)} ms; the apiserver's floor for ${B} claims`);
  // The same run's baseline: the writes a burst needs, alone (burst-floor.ts).
  const floor = await apiserverFloor({
    client: kc,
    limited: operatorKc,
    unlimited: unlimited(operatorKc),
    claims: B,
    sandboxSpec: { image: SANDBOX_IMAGE, command: ["sleep", "infinity"] },
    namespace: `${NS}-floor`,
  });
  say(`floor: ${JSON.stringify(floor)}`);
  await sleep(2000);
  phase("burst");
  const burstLoad = loadavg();
  const auditFrom = auditOffset(cp.auditLogPath);
  const burstStart = performance.now();
  const burst = await Promise.all(Array.from({ length: B }, () => claim({ egress: egress(n) })));
  const burstAllMs = performance.now() - burstStart;
  const burstEnd = new Date().toISOString();
  const burstLoadAfter = loadavg();
  // Its replacements beyond the burst are not part of it (and would double the containers).
  await setReplicas(POOL);
  say(`burst: ${JSON.stringify(stats(burst.map((b) => b.ms)))}`);
  phase("burst done");
  const writes = await burstWrites({
    auditLogPath: cp.auditLogPath,
    fromOffset: auditFrom,
    untilIso: burstEnd,
    namespace: NS,
    claims: new Set(burst.map((b) => b.name)),
    claimed: new Set(burst.map((b) => b.sandbox)),
  });
  say(`writes: ${JSON.stringify(writes)}`);
  await dropClaims();

  // Sustained: `rate` claims a second for `seconds`, paced, each awaited on its own.
  const R = Number(values.rate);
  const S = Number(values.seconds);
  const total = Math.round(R * S);
  await setReplicas(total);
  await poolReady(total);
  say(`pool of ${total} ready; ${R} claims/s for ${S} s`);
  phase("sustained");
  const sustainedStart = performance.now();
  const pending: Promise<Awaited<ReturnType<typeof claim>>>[] = [];
  for (let i = 0; i < total; i++) {
    const due = sustainedStart + (i * 1000) / R;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    pending.push(claim({ egress: egress(n) }));
  }
  const issuedMs = performance.now() - sustainedStart;
  const sustained = await Promise.all(pending);
  say(`sustained: ${JSON.stringify(stats(sustained.map((s) => s.ms)))}`);
  phase("sustained done");

  const result = {
    date: new Date().toISOString(),
    backend: BACKEND,
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      kernel: release(),
    },
    versions: {
      node: process.version,
      dockerEngine: (await engine.version()).Version,
      kubernetes: version(join(cp.binDir, "kube-apiserver"), ["--version"]),
      ...(node
        ? {
            kubelet: version(join(node.binDir, "kubelet"), ["--version"]),
            containerd: version("containerd", ["--version"]),
          }
        : {}),
    },
    /** 1/5/15-minute load averages before and after: the machine is shared. */
    load: {
      before: loadBefore.map((x) => +x.toFixed(2)),
      after: loadavg().map((x) => +x.toFixed(2)),
    },
    args: values,
    policyDelivery:
      BACKEND === "pod"
        ? "policy channel (HTTP/2 watch + acknowledgement)"
        : process.env.POLICY_UPLOAD
          ? "archive upload through the daemon"
          : "host policy directory (bind-mounted)",
    pool: POOL,
    poolFillMs: ms(fillMs),
    warmClaimToReadyMs: {
      ...stats(warm.map((w) => w.ms)),
      controllerMs: stats(warm.map((w) => w.controllerMs ?? Number.NaN)),
      sources: sourcesOf(warm),
    },
    coldClaimToReadyMs: stats(cold),
    ...(execMs.length
      ? {
          warmClaimToFirstExecOutputMs: {
            ...stats(execMs),
            via: "Sandbox.claim + exec (SDK)",
            claimToHandleMs: stats(execClaimMs),
            firstExecMs: stats(execFirstMs),
            sources: sourcesOf(execSources),
          },
        }
      : {}),
    burst: {
      claims: B,
      refillToReadyMs: ms(refillMs),
      refillPerSecond: Number(((B - POOL) / (refillMs / 1000)).toFixed(1)),
      claimToReadyMs: stats(burst.map((b) => b.ms)),
      allReadyMs: ms(burstAllMs),
      sources: sourcesOf(burst),
      /** 1/5/15-minute load averages as the burst began and as its last claim was Ready. */
      load: {
        before: burstLoad.map((x) => +x.toFixed(2)),
        after: burstLoadAfter.map((x) => +x.toFixed(2)),
      },
      /** The apiserver alone, same run, same N: the writes the burst cannot do without (burst-floor.ts). */
      apiserverFloor: floor,
      /** claim -> Ready p90 over the floor's (with the operator's client limit). */
      p90OverFloor: Number(
        (
          percentile(
            burst.map((b) => b.ms),
            90,
          ) / floor.operatorClient.claimMs.p90
        ).toFixed(1),
      ),
      writes,
    },
    sustained: {
      claimsPerSecond: R,
      seconds: S,
      claims: total,
      issuedInMs: ms(issuedMs),
      claimToReadyMs: stats(sustained.map((s) => s.ms)),
      sources: sourcesOf(sustained),
    },
    ...(perContainer.length ? { pooledSandboxMemory: perContainer } : {}),
  };
  console.log(JSON.stringify(result, null, 2));
  const out =
    values.out ??
    join(REPO_ROOT, `bench/results/${BACKEND === "pod" ? "pools-pod.json" : "pools.json"}`);
  writeResult(out, result);

  // Beside the debug log: the apiserver's own timing of every write (audit events).
  if (values.log) copyFileSync(cp.auditLogPath, `${values.log}.audit`);
  stopFollowing();
  await dropClaims();
  await setReplicas(0).catch(() => {});
  await pools.stop();
  await sandboxes.stop();
  if (BACKEND === "docker")
    for (const kind of ["container", "network", "volume"] as const)
      for (const name of await labelled(kind, `sandboxing.dev/owner=${OWNER}`))
        await docker(kind === "container" ? ["rm", "-f", "-v", name] : [kind, "rm", name]);
  await node?.stop();
  await cp.stop();
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
