// Where a warm claim's time goes, step by step: warm claims one at a time
// against a full pool, each traced from the apiserver's audit log (every
// write, timestamped by the apiserver) and the controller's debug lines
// (reconcile start/end per controller and key, the docker backend's policy
// write). Prints a per-step median and writes bench/results/pools-trace[-pod].json.
//
//   npm run bench:pools:trace [-- --backend docker --claims 20]
//   flock /tmp/sbx-node.lock npm run bench:pools:trace -- --backend pod --claims 10
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { Registry } from "prom-client";
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
import { loadKubeConfig } from "../../src/kube/config.js";
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
import { NODE_CONTROLLERS, startNode } from "../../test/support/node/index.js";
import { NODE_SANDBOX_IMAGE } from "../../test/support/node/pods.js";
import { REPO_ROOT } from "../../test/support/paths.js";
import { policyTls } from "../../test/support/policy-tls.js";
import { freePort } from "../../test/support/processes.js";
import { writeResult } from "../support/results.js";
import { percentile } from "../support/stats.js";
import { followClaims } from "./follow-claims.js";

const { values } = parseArgs({
  options: {
    backend: { type: "string", default: "docker" },
    claims: { type: "string", default: "20" },
    out: { type: "string" },
    /**
     * "off": the claims read only what is stored of the Sandboxes, not the
     * Sandbox controller's status writes in flight (the wiring before
     * own-status-source.ts): a before/after in one session.
     */
    "claims-see-writes": { type: "string", default: "on" },
  },
});
const BACKEND = values.backend === "pod" ? "pod" : "docker";
const OWNER = "bench-trace";
const NS = "bench";
const say = (line: string) => process.stderr.write(`[bench:trace] ${line}\n`);
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));
const version = (cmd: string, args: string[]) => {
  try {
    return execFileSync(cmd, args, { encoding: "utf8" }).trim().split("\n")[0];
  } catch {
    return undefined;
  }
};

interface Audit {
  verb: string;
  user?: { username?: string };
  objectRef?: { resource?: string; subresource?: string; name?: string; namespace?: string };
  requestReceivedTimestamp: string;
  stageTimestamp: string;
  responseStatus?: { code?: number };
}
interface Line {
  time: string;
  msg: string;
  controller?: string;
  key?: string;
  sandbox?: string;
  ms?: number;
}

/** Microsecond-precise epoch ms of an RFC 3339 timestamp (Date.parse keeps milliseconds only). */
function epochMs(t: string): number {
  const frac = /\.(\d+)Z$/.exec(t)?.[1] ?? "0";
  return Date.parse(t.replace(/\.\d+Z$/, "Z")) + Number(`0.${frac}`) * 1000;
}

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
  // Outside the control plane's directory, which goes when it stops: kept for a closer look.
  const logFile = join(tmpdir(), `bench-pools-trace-${process.pid}.log`);
  const log = createLogger({ level: "debug", batch: { flushMs: 100, file: logFile } });
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
              policyDir: `/run/sandbox-operator-bench/${OWNER}/policies`,
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

  type Seen = { status?: { sandboxName?: string } };
  const waiters = new Map<string, (c: Seen) => void>();
  const seenAt = new Map<string, number>();
  const onClaim = (obj: {
    metadata: { name: string };
    status?: { phase?: string; sandboxName?: string };
  }) => {
    if (obj.status?.phase === "Ready" && waiters.has(obj.metadata.name)) {
      if (!seenAt.has(obj.metadata.name)) seenAt.set(obj.metadata.name, Date.now());
      waiters.get(obj.metadata.name)?.(obj);
    }
  };
  const stopFollowing = await followClaims(kc, NS, () => waiters.keys(), onClaim);
  const poolReady = async (want: number) => {
    for (;;) {
      const s = (
        (await objects.getNamespacedCustomObject({ ...ref(POOL_PLURAL), name: "p" })) as {
          status?: { readyReplicas?: number; replicas?: number };
        }
      ).status;
      if (s?.readyReplicas === want && s.replicas === want) return;
      await sleep(100);
    }
  };

  await create(TEMPLATE_PLURAL, TEMPLATE_KIND, "t", {
    backend: BACKEND,
    image: BACKEND === "pod" ? NODE_SANDBOX_IMAGE : SANDBOX_IMAGE,
    command: ["sleep", "infinity"],
    resources: BACKEND === "pod" ? { cpu: "10m", memory: "64Mi" } : { cpu: "100m", memory: "64Mi" },
  });
  await create(POOL_PLURAL, POOL_KIND, "p", {
    templateRef: { name: "t" },
    replicas: 2,
    refill: { perSecond: 50, burst: 50 },
  });
  await poolReady(2);
  say("pool of 2 ready");

  const runs: { claim: string; sandbox: string; sentMs: number; seenReadyMs: number }[] = [];
  for (let i = 0; i < Number(values.claims); i++) {
    await poolReady(2);
    await sleep(500); // the refill's own writes settle: this claim is traced alone
    const name = `c${i}`;
    const ready = new Promise<Seen>((resolve) => waiters.set(name, resolve));
    const sentMs = Date.now();
    await create(CLAIM_PLURAL, CLAIM_KIND, name, {
      templateRef: { name: "t" },
      egress: {
        defaultAction: "deny",
        rules: [{ action: "allow", target: `${name}.example.org`, ports: [443] }],
      },
    });
    const c = await ready;
    waiters.delete(name);
    say(`${name} ready in ${Date.now() - sentMs} ms`);
    runs.push({
      claim: name,
      sandbox: c.status?.sandboxName ?? "?",
      sentMs,
      seenReadyMs: seenAt.get(name)!,
    });
  }
  stopFollowing();
  await sleep(500); // the log's last batch
  log.flush();
  await sleep(200);

  const audit = readFileSync(cp.auditLogPath, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Audit);
  const lines = readFileSync(logFile, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);

  const first = <T>(xs: T[], after: number, at: (x: T) => number) =>
    xs.map(at).find((t) => t >= after);
  const writes = (resource: string, sub: string | undefined, name: string) =>
    audit
      .filter(
        (a) =>
          a.objectRef?.resource === resource &&
          a.objectRef.subresource === sub &&
          a.objectRef.name === name &&
          a.verb !== "get",
      )
      .map((a) => ({
        received: epochMs(a.requestReceivedTimestamp),
        at: epochMs(a.stageTimestamp),
        verb: a.verb,
        code: a.responseStatus?.code,
        user: a.user?.username ?? "",
      }));
  /** When the policy endpoint logged `msg` for this sandbox, first at or after `after`. */
  const channelLine = (msg: string, sandbox: string, after: number) =>
    lines
      .filter((l) => l.msg === msg && l.sandbox === `${NS}/${sandbox}`)
      .map((l) => Date.parse(l.time))
      .find((t) => t >= after);
  const starts = (controller: string, key: string) =>
    lines
      .filter((l) => l.controller === controller && l.key === key && l.msg === "reconcile started")
      .map((l) => Date.parse(l.time));

  type Step = Record<string, number | undefined>;
  const steps: Step[] = [];
  const timelines: unknown[] = [];
  for (const r of runs) {
    const created = writes("sandboxclaims", undefined, r.claim).find((w) => w.verb === "create");
    const claimStatus = writes("sandboxclaims", "status", r.claim);
    const bind = writes("sandboxes", undefined, r.sandbox).find(
      (w) => w.verb === "patch" && w.code === 200 && w.at >= r.sentMs,
    );
    const sbxStatus = writes("sandboxes", "status", r.sandbox).filter(
      (w) => bind && w.at >= bind.at,
    );
    const claimStarts = starts("claim", `${NS}/${r.claim}`);
    const sbxStarts = starts("sandbox", `${NS}/${r.sandbox}`);
    const t0 = r.sentMs;
    const claimSeen = first(claimStarts, t0, (t) => t);
    const sbxStart = bind && first(sbxStarts, Math.floor(bind.received), (t) => t);
    const policy =
      bind &&
      lines
        .filter((l) => l.msg === "egress policy delivered" && l.sandbox === `${NS}/${r.sandbox}`)
        .map((l) => Date.parse(l.time))
        .find((t) => t >= Math.floor(bind.at));
    // Docker backend: the sidecar's acknowledgement, seen by the reconcile that wrote the policy.
    const ackSeen =
      policy === undefined
        ? undefined
        : lines
            .filter(
              (l) => l.msg === "egress policy acknowledged" && l.sandbox === `${NS}/${r.sandbox}`,
            )
            .map((l) => Date.parse(l.time))
            .find((t) => t >= policy);
    // Pod backend: the policy endpoint's lines (sent on the sidecar's watch,
    // its acknowledgement received), the Pod writes after the binding (the
    // reconcile's policy-annotation patch, the endpoint's acknowledgement
    // patch, the kubelet's status), the NetworkPolicy's replace.
    // From when the apiserver received the binding: its watch event may reach
    // the controller before the audit log's completion stamp.
    const after = bind ? Math.floor(bind.received) : Number.POSITIVE_INFINITY;
    const sent =
      BACKEND === "pod" ? channelLine("egress policy sent", r.sandbox, after) : undefined;
    const acked =
      sent !== undefined ? channelLine("egress policy acknowledged", r.sandbox, sent) : undefined;
    const podWrites = writes("pods", undefined, r.sandbox).filter((w) => w.at >= after);
    const ackWrite = acked !== undefined ? podWrites.find((w) => w.at >= acked) : undefined;
    const podPatch = podWrites.find((w) => w !== ackWrite && w.verb === "patch");
    const kubeletWrites = writes("pods", "status", r.sandbox).filter((w) => w.at >= after);
    const npWrite = writes("networkpolicies", undefined, r.sandbox).find((w) => w.at >= after);
    const sbxAfterAck = ackWrite && first(sbxStarts, Math.floor(ackWrite.at), (t) => t);
    const sbxReady = sbxStatus.at(-1)?.at;
    const sbxReadySent = sbxStatus.at(-1)?.received;
    const claimAfterReady = sbxReady && first(claimStarts, Math.floor(sbxReady), (t) => t);
    const claimReady = claimStatus.at(-1)?.at;
    const claimReadySent = claimStatus.at(-1)?.received;
    const rel = (t: number | undefined) => (t === undefined ? undefined : Math.round(t - t0));
    const step: Step = {
      "claim created (apiserver)": rel(created?.at),
      "claim reconcile started": rel(claimSeen),
      "bind patch written": rel(bind?.at),
      "claim status Bound written": rel(claimStatus[0]?.at),
      "sandbox reconcile started": rel(sbxStart),
      "policy written (docker)": BACKEND === "docker" ? rel(policy) : undefined,
      "sidecar ack seen (docker)": BACKEND === "docker" ? rel(ackSeen) : undefined,
      "NetworkPolicy replaced (pod)": rel(npWrite?.at),
      "Pod policy annotation patched (pod)": rel(podPatch?.at),
      "policy sent on the channel (pod)": rel(sent),
      "sidecar ack received (pod)": rel(acked),
      "ack recorded on the Pod (pod)": rel(ackWrite?.at),
      "sandbox reconcile after the ack (pod)": rel(sbxAfterAck),
      "sandbox status Ready received (apiserver)": rel(sbxReadySent),
      "sandbox status Ready written": rel(sbxReady),
      "claim reconcile after sandbox Ready": rel(claimAfterReady),
      "claim status Ready received (apiserver)": rel(claimReadySent),
      "claim status Ready written": rel(claimReady),
      "client saw claim Ready": rel(r.seenReadyMs),
    };
    steps.push(step);
    timelines.push({
      claim: r.claim,
      sandbox: r.sandbox,
      ...step,
      sandboxStatusWrites: sbxStatus.map((w) => rel(w.at)),
      // "verb received->completed" at the apiserver, ms from create.
      podWrites: podWrites.map((w) => `${w.verb} ${rel(w.received)}->${rel(w.at)}`),
      networkPolicyWrites: writes("networkpolicies", undefined, r.sandbox)
        .filter((w) => w.at >= after)
        .map((w) => `${w.verb} ${rel(w.received)}->${rel(w.at)}`),
      sandboxStatusWriteSpans: sbxStatus.map((w) => `${rel(w.received)}->${rel(w.at)}`),
      kubeletPodStatusWrites: kubeletWrites.map((w) => rel(w.at)).filter((x) => (x ?? 0) < 5000),
      claimStatusWrites: claimStatus.map((w) => rel(w.at)),
      claimReconciles: claimStarts.map(rel).filter((x) => (x ?? -1) >= 0),
      sandboxReconciles: sbxStarts.map(rel).filter((x) => (x ?? -1) >= 0 && (x ?? 0) < 5000),
      // Each sandbox reconcile after the binding: "started at +duration" (ms).
      sandboxReconcileSpans: lines
        .filter(
          (l) =>
            l.controller === "sandbox" &&
            l.key === `${NS}/${r.sandbox}` &&
            l.msg === "reconcile ended" &&
            l.ms !== undefined,
        )
        .map((l) => ({ end: Date.parse(l.time) - t0, ms: l.ms! }))
        .filter((x) => x.end >= 0 && x.end < 5000)
        .map((x) => `${Math.round(x.end - x.ms)}+${x.ms}`),
    });
  }
  const median: Record<string, number> = {};
  for (const k of Object.keys(steps[0] ?? {})) {
    const xs = steps.map((s) => s[k]).filter((x): x is number => x !== undefined);
    if (xs.length) median[k] = Math.round(percentile(xs, 50));
  }
  const result = {
    date: new Date().toISOString(),
    backend: BACKEND,
    machine: { cpus: cpus().length, model: cpus()[0]?.model, kernel: release() },
    versions: {
      node: process.version,
      kubernetes: version(join(cp.binDir, "kube-apiserver"), ["--version"]),
      ...(node
        ? {
            kubelet: version(join(node.binDir, "kubelet"), ["--version"]),
            containerd: version("containerd", ["--version"]),
          }
        : {}),
    },
    args: values,
    load: {
      before: loadBefore.map((x) => +x.toFixed(2)),
      after: loadavg().map((x) => +x.toFixed(2)),
    },
    claims: runs.length,
    note: "ms from the client's create request, per step; apiserver times from its audit log (write completed), controller times from its debug lines (reconcile started). Median per step.",
    clientSawReadyMs: (() => {
      const xs = runs.map((r) => r.seenReadyMs - r.sentMs);
      return {
        n: xs.length,
        p50: Math.round(percentile(xs, 50)),
        p90: Math.round(percentile(xs, 90)),
        p99: Math.round(percentile(xs, 99)),
      };
    })(),
    medianMsFromCreate: median,
    timelines,
  };
  console.log(JSON.stringify({ ...result, timelines: undefined }, null, 2));
  const out =
    values.out ??
    join(
      REPO_ROOT,
      `bench/results/${BACKEND === "pod" ? "pools-trace-pod.json" : "pools-trace.json"}`,
    );
  writeResult(out, result);
  say(`wrote ${out}; the operator's debug log: ${logFile}`);

  await objects.deleteCollectionNamespacedCustomObject({ ...ref(CLAIM_PLURAL) }).catch(() => {});
  await objects
    .patchNamespacedCustomObject(
      { ...ref(POOL_PLURAL), name: "p", body: { spec: { replicas: 0 } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    )
    .catch(() => {});
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
