// Composition root of the Sandbox controller: informers for Sandboxes and the
// objects the pod backend owns, the reconciler, status writer, events, leader
// election and metrics, wired together.
import type * as k8s from "@kubernetes/client-node";
import * as kube from "@kubernetes/client-node";
import type Docker from "dockerode";
import { Counter, type Registry } from "prom-client";
import {
  API_VERSION,
  GROUP,
  SANDBOX_KIND,
  SANDBOX_PLURAL,
  SNAPSHOT_PLURAL,
  VERSION,
} from "../api/group.js";
import { Labels, MANAGED_SELECTOR } from "../api/labels.js";
import type { Sandbox } from "../api/sandbox.js";
import type { SandboxSnapshot } from "../api/snapshot.js";
import type { BackendName, SandboxBackend } from "../backends/backend.js";
import type { DockerRuntime, DockerSettings } from "../backends/docker/index.js";
import type { GatewayAccess } from "../backends/pod/agent.js";
import { PodBackend } from "../backends/pod/backend.js";
import { podCacheView } from "../backends/pod/cache.js";
import { podChangeMatters } from "../backends/pod/pod-change.js";
import { Controller } from "../controller/controller.js";
import { apiStatus } from "../controller/errors.js";
import { EventRecorder } from "../controller/events.js";
import { Finalizers } from "../controller/finalizers.js";
import { Informer, type KubeObject, type ObjectSource } from "../controller/informer.js";
import { rawRequest } from "../controller/raw-request.js";
import { shardLabelValue, shardOf, shardSelector, unshardedSelector } from "../controller/shard.js";
import { ShardedInformer } from "../controller/sharded-informer.js";
import { type StatusWriteFeed, StatusWriter } from "../controller/status-writer.js";
import { gateWrites, NotLeaderError } from "../controller/write-gate.js";
import { dockerActivity, podActivity } from "../idle/activity.js";
import { IdleSuspender } from "../idle/suspender.js";
import { idleSubjectOf } from "../idle/view.js";
import { unlimited } from "../kube/config.js";
import { keyOf } from "../kube/object-key.js";
import type { Logger } from "../observability/logger.js";
import { METRIC_PREFIX, sandboxMetrics } from "../observability/metrics.js";
import { AppliedPolicies } from "../policy-server/applied.js";
import { PolicyServer } from "../policy-server/server.js";
import { ExpiryTimers } from "./expiry-timers.js";
import { CLAIM_LANE_FACTOR, SandboxPriority, sandboxPriority } from "./priority.js";
import { SandboxReconciler } from "./reconciler.js";

export interface SandboxControllerOptions {
  kubeConfig: k8s.KubeConfig;
  /** Namespaces to watch; empty means all. */
  namespaces: string[];
  defaultBackend: BackendName;
  /** Image of the egress init container and sidecar (the operator image). */
  egressImage: string;
  /** The gateway reaches pod-backend agents at the pod IP (src/backends/pod/agent.ts). */
  gateway?: GatewayAccess;
  /** Enables the docker backend. */
  docker?: {
    client: Docker;
    settings: Omit<DockerSettings, "egressImage">;
    /** Re-list and orphan sweep period (default 60 s). */
    sweepIntervalMs?: number;
  };
  concurrency: number;
  stallTimeoutSeconds: number;
  leaderElection?: {
    namespace: string;
    name: string;
    identity: string;
    leaseDurationMs?: number;
    /** More than 1: Sandboxes split into this many shards, each on its own Lease (see shard-elector.ts). */
    shards?: number;
  };
  /**
   * The pod backend's live policy channel: this process serves the policy
   * endpoint on `listen`, and sandbox Pods dial `endpoint` (see
   * src/policy-server/). Off: sidecars follow the kubelet-synced file only.
   */
  policyChannel?: {
    listen: { host: string; port: number };
    /** `serverName`: what the certificate names when not `host` (see src/policy-server/service-endpoint.ts). */
    endpoint: { host: string; port: number; serverName?: string };
    tls: { cert: string; key: string; ca: string };
    peer?: k8s.V1NetworkPolicyPeer;
    /** How long a TokenReview answer is reused (the endpoint's default: 30 s). */
    reviewCacheMs?: number;
  };
  registry: Registry;
  log: Logger;
}

export interface RunningSandboxController {
  /** The port the policy endpoint listens on (when the channel is on). */
  policyPort(): number | undefined;
  ready(): boolean;
  isLeader(): boolean;
  /** Shards this replica holds (sharded only). */
  heldShards(): number[];
  /**
   * The informer of every Sandbox, when this controller runs one (not sharded),
   * for other controllers to share (see borrowed-source.ts). It holds what is
   * stored: what this controller is writing shows only through
   * `sandboxStatusWrites`.
   */
  allSandboxes?: ObjectSource<Sandbox & KubeObject>;
  /**
   * This controller's Sandbox status writes, as they are sent and answered:
   * a reader that may act on a status being written (the claim controller,
   * through own-status-source.ts) follows them.
   */
  sandboxStatusWrites: StatusWriteFeed;
  /** Status writes made so far (for tests and debugging). */
  statusWrites(): number;
  /** Informers whose watches are down: the cache may be stale (for /readyz). */
  watchProblems(): string[];
  /** Why the docker backend's daemon is unusable, if the backend is enabled (for /readyz). */
  dockerUnavailable(): string | undefined;
  /** Re-list the Docker host and collect orphans now (also periodic). */
  sweepDocker(): Promise<void>;
  stop(opts?: { release?: boolean }): Promise<void>;
}

const SANDBOX_RESOURCE = { group: GROUP, version: VERSION, plural: SANDBOX_PLURAL };

export async function startSandboxController(
  opts: SandboxControllerOptions,
): Promise<RunningSandboxController> {
  const { kubeConfig, log, registry } = opts;
  // Every write goes through this KubeConfig and asks the controller first:
  // nothing is written once this replica has lost (or cannot vouch for) its
  // Lease. Reads (informers) and leader election use the plain one.
  let controller: Controller | undefined;
  const sharded = (opts.leaderElection?.shards ?? 1) > 1;
  const writer = gateWrites(
    kubeConfig,
    Object.assign(
      () => {
        if (!controller) throw new NotLeaderError("the controller has not started");
        controller.writeGate();
      },
      { contextual: sharded },
    ),
  );
  const informer = <T extends KubeObject>(
    apiPath: string,
    resource: string,
    labelSelector?: string,
    transform?: (obj: T) => T,
    metadataOnly = false,
  ) =>
    new Informer<T>({
      kubeConfig,
      apiPath,
      resource,
      namespaces: opts.namespaces,
      labelSelector,
      transform,
      metadataOnly,
      log,
    });
  // Sharded, each replica watches only its shards' objects, by the shard label
  // (see sharded-informer.ts). Not with the docker backend: its orphan sweep
  // judges every container by whether its Sandbox exists, which needs them all.
  const shards = sharded && !opts.docker ? opts.leaderElection!.shards! : undefined;
  const source = <T extends KubeObject>(
    apiPath: string,
    resource: string,
    labelSelector?: string,
    transform?: (obj: T) => T,
  ): ObjectSource<T> =>
    shards === undefined
      ? informer<T>(apiPath, resource, labelSelector, transform)
      : new ShardedInformer<T>((shard) =>
          informer<T>(
            apiPath,
            resource,
            shardSelector(Labels.shard, shard, shards, labelSelector),
            transform,
          ),
        );

  const sandboxes = source<Sandbox & KubeObject>(`/apis/${GROUP}/${VERSION}`, SANDBOX_PLURAL);
  // Sandboxes not labelled for a shard (new ones; ones from before sharding or
  // from another shard count): names only, so that the holder of each one's
  // shard labels it, after which that holder's shard watch takes it in.
  const unlabelled =
    shards === undefined
      ? undefined
      : informer<KubeObject>(
          `/apis/${GROUP}/${VERSION}`,
          SANDBOX_PLURAL,
          unshardedSelector(Labels.shard, shards),
          undefined,
          true,
        );
  // Only what we manage: a cluster's other Pods never enter our cache.
  const pods = source<k8s.V1Pod>("/api/v1", "pods", MANAGED_SELECTOR, podCacheView);
  const services = source<k8s.V1Service>("/api/v1", "services", MANAGED_SELECTOR);
  const networkPolicies = source<k8s.V1NetworkPolicy>(
    "/apis/networking.k8s.io/v1",
    "networkpolicies",
    MANAGED_SELECTOR,
  );
  // Workspace PVCs the pod backend made (labelled): a claim that binds or goes
  // away reconciles its sandbox. An `existing` PVC made by hand is read by name.
  const claims = informer<k8s.V1PersistentVolumeClaim>(
    "/api/v1",
    "persistentvolumeclaims",
    MANAGED_SELECTOR,
  );

  // Acknowledgements this replica's policy endpoint received (the pod backend reads them too).
  const applied = opts.policyChannel ? new AppliedPolicies() : undefined;
  const podBackend = new PodBackend({
    kubeConfig: writer,
    pods,
    services,
    networkPolicies,
    claims,
    ...(applied ? { applied } : {}),
    enqueue: (key) => controller?.enqueue(key),
    egress: {
      image: opts.egressImage,
      channel: opts.policyChannel && {
        ...opts.policyChannel.endpoint,
        caPem: opts.policyChannel.tls.ca,
        peer: opts.policyChannel.peer,
      },
    },
    ...(opts.gateway ? { gateway: opts.gateway } : {}),
  });
  const backends: Partial<Record<BackendName, SandboxBackend>> = { pod: podBackend };
  // Served by every replica (its informers run whether or not it leads).
  const policyServer =
    opts.policyChannel &&
    new PolicyServer({
      kubeConfig,
      pods,
      sandboxes,
      tls: opts.policyChannel.tls,
      listen: opts.policyChannel.listen,
      applied,
      onApplied: (key) => controller?.enqueue(key),
      reviewCacheMs: opts.policyChannel.reviewCacheMs,
      log,
    });
  const policyPort = policyServer && (await policyServer.start()).port;

  const backendOf = (s: Sandbox) => s.spec?.backend ?? opts.defaultBackend;
  // Both backends start spec.workspace.fromSnapshot from the snapshot
  // controller's copies, and a sandbox waiting for one (SnapshotNotReady) is
  // not stalled, so nothing else would look at it again before its expiry: a
  // snapshot becoming ready reconciles the sandboxes waiting for it (below).
  // The docker backend also reads the SandboxSnapshot from this cache.
  const snapshots = informer<SandboxSnapshot & KubeObject>(
    `/apis/${GROUP}/${VERSION}`,
    SNAPSHOT_PLURAL,
  );
  let docker: DockerRuntime | undefined;
  if (opts.docker) {
    const registryCounter = orphanCounter(registry);
    // Loaded only when enabled (see the CLI): a pod-only controller never parses dockerode.
    const { startDockerRuntime } = await import("../backends/docker/index.js");
    docker = startDockerRuntime({
      docker: opts.docker.client,
      settings: { ...opts.docker.settings, egressImage: opts.egressImage },
      enqueue: (key) => controller?.enqueue(key),
      enqueueAll: () => {
        for (const s of sandboxes.list())
          if (backendOf(s) === "docker") controller?.enqueue(keyOf(s));
      },
      liveUid: (key) => {
        const s = sandboxes.get(key);
        return s && backendOf(s) === "docker" ? s.metadata.uid : undefined;
      },
      watches: (namespace) => opts.namespaces.length === 0 || opts.namespaces.includes(namespace),
      canCollect: () => !!controller?.mayWrite() && controller.ready(),
      onOrphanRemoved: (kind) => registryCounter.inc({ kind }),
      sweepIntervalMs: opts.docker.sweepIntervalMs,
      snapshot: (namespace, name) => snapshots.get(`${namespace}/${name}`),
      log,
    });
    backends.docker = docker.backend;
  }

  const identity = opts.leaderElection?.identity ?? "sandbox-operator";
  const statusWriter = new StatusWriter(writer, SANDBOX_RESOURCE, registry, METRIC_PREFIX);
  const finalizers = new Finalizers(writer, SANDBOX_RESOURCE);
  const events = new EventRecorder({
    kubeConfig: writer,
    component: "sandbox-operator",
    instance: identity,
    log,
  });
  const objects = writer.makeApiClient(kube.CustomObjectsApi);
  const metrics = sandboxMetrics(registry, () =>
    countByPhase(sandboxes.list(), opts.defaultBackend),
  );

  const reconciler = new SandboxReconciler({
    getSandbox: (key) => sandboxes.get(key),
    backends,
    defaultBackend: opts.defaultBackend,
    writeStatus: (sandbox, status) => statusWriter.write(sandbox, status),
    deleteSandbox: async (sandbox) => {
      await objects.deleteNamespacedCustomObject({
        ...SANDBOX_RESOURCE,
        namespace: sandbox.metadata.namespace!,
        name: sandbox.metadata.name!,
        propagationPolicy: "Background",
        // Only this incarnation: never a newer Sandbox that reuses the name.
        body: { preconditions: { uid: sandbox.metadata.uid } },
      });
    },
    addFinalizer: (sandbox, f) => finalizers.add(sandbox, f),
    removeFinalizer: (sandbox, f) => finalizers.remove(sandbox, f),
    recordEvent: (sandbox, e) =>
      events.record(
        { apiVersion: API_VERSION, kind: SANDBOX_KIND, metadata: sandbox.metadata },
        e.type,
        e.reason,
        e.message,
      ),
    stallTimeoutSeconds: opts.stallTimeoutSeconds,
    onReady: (backend, seconds) => metrics.readySeconds.observe({ backend }, seconds),
    log,
  });

  /** Label a Sandbox with its shard (this incarnation only: the UID is a precondition). */
  const labelShard = async (obj: KubeObject, value: string, signal: AbortSignal) => {
    const { namespace, name, uid } = obj.metadata ?? {};
    try {
      await rawRequest(
        writer,
        "PATCH",
        `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${SANDBOX_PLURAL}/${name}`,
        {
          body: { metadata: { uid, labels: { [Labels.shard]: value } } },
          contentType: "application/merge-patch+json",
          signal,
        },
      );
    } catch (err) {
      // Deleted meanwhile, or a newer namesake (its own event brings it back).
      if (apiStatus(err) === 404 || apiStatus(err) === 409) return;
      throw err;
    }
  };

  // Idle auto-suspend (docs/idle.md): checked after each reconcile, its next
  // look returned as a requeue; reads the agent once per idle period.
  const sandboxRef = (s: { metadata: { namespace?: string; name?: string; uid?: string } }) => ({
    namespace: s.metadata.namespace!,
    name: s.metadata.name!,
    ...(s.metadata.uid ? { uid: s.metadata.uid } : {}),
  });
  const idle = new IdleSuspender({
    subject: (key) => idleSubjectOf(sandboxes.get(key)),
    readActivity: (s, backend) => {
      if (backend === "docker") {
        if (!opts.docker) throw new Error("the docker backend is not enabled");
        return dockerActivity(opts.docker.client, sandboxRef(s));
      }
      return podActivity(kubeConfig, sandboxRef(s));
    },
    patch: async (s, body) => {
      await objects.patchNamespacedCustomObject(
        { ...SANDBOX_RESOURCE, namespace: s.metadata.namespace!, name: s.metadata.name!, body },
        kube.setHeaderOptions("Content-Type", kube.PatchStrategy.MergePatch),
      );
    },
    recordEvent: (s, e) =>
      events.record(
        { apiVersion: API_VERSION, kind: SANDBOX_KIND, metadata: s.metadata },
        e.type,
        e.reason,
        e.message,
      ),
    registry,
    metricPrefix: METRIC_PREFIX,
    log,
  });

  const expiryTimers = new ExpiryTimers((key) => controller?.enqueue(key));
  // A secondary's event for a Sandbox that is not (or no longer) in the cache
  // enqueues nothing: its reconcile would find no Sandbox and do nothing (the
  // Pod and NetworkPolicy of a deleted sandbox are collected by Kubernetes,
  // each in two or three events), and the Sandbox's own add brings the key
  // when it comes.
  const ownerKey = (obj: KubeObject) => {
    const name = obj.metadata?.labels?.[Labels.sandbox];
    if (!name) return undefined;
    const key = keyOf({ metadata: { namespace: obj.metadata?.namespace, name } });
    return sandboxes.get(key) || unlabelled?.get(key) ? key : undefined;
  };
  // Per-reconcile debug lines are built only when they would be written.
  const debug = log.isLevelEnabled("debug");
  controller = new Controller({
    name: "sandbox",
    primary: sandboxes,
    secondaries: [
      {
        name: "pods",
        informer: pods as ObjectSource<KubeObject>,
        primaryKey: ownerKey,
        // The kubelet's (kwok's) bookkeeping that changes no decision enqueues nothing.
        changed: (pod, old) => podChangeMatters(pod as k8s.V1Pod, old as k8s.V1Pod),
        // The Pod the reconcile just created or relabelled: it decided from that very version.
        ownWrites: podBackend.ownWrites.pods,
      },
      ...(
        [
          ["services", services, podBackend.ownWrites.services],
          ["networkpolicies", networkPolicies, podBackend.ownWrites.networkPolicies],
          ["persistentvolumeclaims", claims, undefined],
        ] as const
      ).map(([name, i, ownWrites]) => ({
        name,
        informer: i as ObjectSource<KubeObject>,
        primaryKey: ownerKey,
        ...(ownWrites ? { ownWrites } : {}),
      })),
      ...(unlabelled ? [{ name: "unlabelled", informer: unlabelled, primaryKey: keyOf }] : []),
      // Fanned out to the sandboxes that start from it (below).
      {
        name: "sandboxsnapshots",
        informer: snapshots as ObjectSource<KubeObject>,
        primaryKey: () => undefined,
      },
    ],
    reconcile: async (key, ctx) => {
      const bare = unlabelled?.get(key);
      if (bare && shards !== undefined) {
        await labelShard(bare, shardLabelValue(shardOf(key, shards), shards), ctx.signal);
        return;
      }
      const started = performance.now();
      const outcome = await reconciler.reconcile(key, ctx.signal).catch((err) => {
        if (debug) log.debug({ sandbox: key, err: String(err) }, "reconcile error");
        // The retry backoff grows to minutes; the lifetime does not wait for it.
        expiryTimers.arm(key, reconciler.untilExpiry(key));
        throw err;
      });
      if (debug) {
        const ms = Math.round(performance.now() - started);
        log.debug({ sandbox: key, ms, ...outcome }, "reconciled");
      }
      const raw = sandboxes.get(key);
      const idleIn = await idle.check(key, raw ? backendOf(raw) : undefined);
      if (idleIn === undefined) return outcome;
      return {
        ...outcome,
        requeueAfter:
          outcome.requeueAfter === undefined ? idleIn : Math.min(outcome.requeueAfter, idleIn),
      };
    },
    concurrency: opts.concurrency,
    // A claim waiting for its sandbox goes ahead of its pool's refills (priority.ts).
    priority: (key) => sandboxPriority(sandboxes.get(key)),
    priorityLane: {
      minPriority: SandboxPriority.claimWarm,
      extra: CLAIM_LANE_FACTOR * opts.concurrency,
    },
    leaderElection:
      opts.leaderElection && !sharded
        ? { kubeConfig: unlimited(kubeConfig), ...opts.leaderElection }
        : undefined,
    sharding:
      opts.leaderElection && sharded
        ? {
            kubeConfig: unlimited(kubeConfig),
            ...opts.leaderElection,
            shards: opts.leaderElection.shards!,
            groupLabel: `${GROUP}/lease-group`,
          }
        : undefined,
    registry,
    metricPrefix: METRIC_PREFIX,
    log,
  });
  // A snapshot settling (Ready, or Failed) ends the wait of the sandboxes that start from it.
  const onSnapshot = (snap: SandboxSnapshot & KubeObject) => {
    if (snap.status?.phase !== "Ready" && snap.status?.phase !== "Failed") return;
    for (const s of sandboxes.list())
      if (
        s.metadata.namespace === snap.metadata.namespace &&
        s.spec?.workspace?.fromSnapshot?.name === snap.metadata.name
      )
        controller?.enqueue(keyOf(s));
  };
  snapshots.on({ add: onSnapshot, update: onSnapshot });
  controller.start();

  return {
    policyPort: () => policyPort,
    ready: () => !!controller?.ready(),
    isLeader: () => !!controller?.isLeader(),
    heldShards: () => controller?.heldShards() ?? [],
    ...(shards === undefined ? { allSandboxes: sandboxes } : {}),
    sandboxStatusWrites: statusWriter,
    statusWrites: () => statusWriter.writes,
    watchProblems: () => controller?.watchProblems() ?? [],
    dockerUnavailable: () => docker?.unavailable(),
    sweepDocker: async () => docker?.sweep(),
    stop: async (stopOpts) => {
      expiryTimers.clear();
      // Events are flushed while the Lease is still ours; after it is released they would be refused.
      await controller?.stop({ ...stopOpts, drain: () => events.flush() });
      await docker?.stop();
      await policyServer?.stop();
      await events.flush();
    },
  };
}

function orphanCounter(registry: Registry) {
  return new Counter({
    name: `${METRIC_PREFIX}_docker_orphans_removed_total`,
    help: "Docker objects removed because their Sandbox no longer exists, by kind.",
    labelNames: ["kind"],
    registers: [registry],
  });
}

function countByPhase(sandboxes: Sandbox[], defaultBackend: BackendName) {
  const counts = new Map<string, { phase: string; backend: string; count: number }>();
  for (const s of sandboxes) {
    const phase = s.metadata.deletionTimestamp ? "Terminating" : (s.status?.phase ?? "Pending");
    const backend = s.status?.backend ?? s.spec?.backend ?? defaultBackend;
    const k = `${phase}/${backend}`;
    const entry = counts.get(k) ?? { phase, backend, count: 0 };
    entry.count++;
    counts.set(k, entry);
  }
  return counts.values();
}

export { keyOf };
