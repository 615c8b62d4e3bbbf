// Composition root of the warm pool and claim controllers: shared informers
// for templates, pools, claims and sandboxes, one Controller per concept
// (each with its own Lease when leader election is on), status writers,
// events and metrics.
import type * as k8s from "@kubernetes/client-node";
import type { Registry } from "prom-client";
import {
  CLAIM_PLURAL,
  GROUP,
  POOL_PLURAL,
  SANDBOX_PLURAL,
  TEMPLATE_PLURAL,
  VERSION,
} from "../api/group.js";
import { Labels } from "../api/labels.js";
import type { SandboxClaim, SandboxWarmPool } from "../api/pools.js";
import type { Sandbox } from "../api/sandbox.js";
import type { BackendName } from "../backends/backend.js";
import { ClaimReconciler } from "../claim/controller.js";
import type { LiveEgress } from "../claim/warm.js";
import { borrowed } from "../controller/borrowed-source.js";
import { Controller } from "../controller/controller.js";
import { EventRecorder } from "../controller/events.js";
import { Informer, type KubeObject, type ObjectSource } from "../controller/informer.js";
import { withOwnStatusWrites } from "../controller/own-status-source.js";
import { type StatusWriteFeed, StatusWriter } from "../controller/status-writer.js";
import { gateWrites, NotLeaderError } from "../controller/write-gate.js";
import { unlimited } from "../kube/config.js";
import { keyOf } from "../kube/object-key.js";
import type { Logger } from "../observability/logger.js";
import { METRIC_PREFIX } from "../observability/metrics.js";
import { PoolReconciler } from "./controller.js";
import { poolMetrics } from "./metrics.js";
import type { RefillHoldBounds } from "./refill-hold.js";

/** See PoolControllersOptions.claimConcurrency. */
export const CLAIM_CONCURRENCY_FACTOR = 4;

export interface PoolControllersOptions {
  kubeConfig: k8s.KubeConfig;
  namespaces: string[];
  defaultBackend: BackendName;
  /** What each backend delivers live (src/claim/warm.ts); the CLI sets the pod backend's from its policy channel. */
  liveEgress?: Partial<Record<BackendName, LiveEgress>>;
  concurrency: number;
  /**
   * Claims reconciled at once (default: CLAIM_CONCURRENCY_FACTOR × concurrency).
   * A claim's reconcile holds no container or Pod work, only a few API writes
   * (the binding, its status), so in a burst of claims its workers sit waiting
   * on the apiserver: with as few workers as the Sandbox controller, the later
   * claims of a burst queue behind the first ones' writes (bench/pools).
   */
  claimConcurrency?: number;
  /** Bounds of the refill hold while claims wait (default REFILL_HOLD, src/pool/refill-hold.ts). */
  refillHold?: RefillHoldBounds;
  /**
   * The Sandbox controller's informer, when it watches every Sandbox (not
   * sharded): read here too instead of a second watch and cache of the same
   * objects (every Sandbox event would be parsed and cached twice).
   */
  sandboxes?: ObjectSource<Sandbox & KubeObject>;
  /**
   * The Sandbox controller's status writes, when it runs in this process: the
   * claim controller reads the Sandboxes through them (own-status-source.ts),
   * so a claim's Ready goes out beside its sandbox's Ready write instead of
   * after that write and its watch event. The pool controller never does: its
   * roll and refill budgets count only what is stored.
   */
  sandboxStatusWrites?: StatusWriteFeed;
  leaderElection?: { namespace: string; name: string; identity: string; leaseDurationMs?: number };
  registry: Registry;
  log: Logger;
}

export interface RunningPoolControllers {
  ready(): boolean;
  stop(opts?: { release?: boolean }): Promise<void>;
}

export async function startPoolControllers(
  opts: PoolControllersOptions,
): Promise<RunningPoolControllers> {
  const { kubeConfig, log, registry } = opts;
  const informer = <T extends KubeObject>(resource: string) =>
    new Informer<T>({
      kubeConfig,
      apiPath: `/apis/${GROUP}/${VERSION}`,
      resource,
      namespaces: opts.namespaces,
      log,
    });
  const templates = informer<KubeObject & { spec?: unknown }>(TEMPLATE_PLURAL);
  const pools = informer<SandboxWarmPool & KubeObject>(POOL_PLURAL);
  const claims = informer<SandboxClaim & KubeObject>(CLAIM_PLURAL);
  const sandboxes = opts.sandboxes
    ? borrowed(opts.sandboxes)
    : informer<Sandbox & KubeObject>(SANDBOX_PLURAL);
  // The same cache, with the Sandbox controller's writes in flight on top: for
  // the claims only (a claim reports what is decided and being written).
  const claimSandboxes = opts.sandboxStatusWrites
    ? withOwnStatusWrites(sandboxes, opts.sandboxStatusWrites)
    : sandboxes;

  const controllers: Controller[] = [];
  const writerFor = (i: number) =>
    gateWrites(kubeConfig, () => {
      const c = controllers[i];
      if (!c) throw new NotLeaderError("the controller has not started");
      c.writeGate();
    });
  const poolWriter = writerFor(0);
  const claimWriter = writerFor(1);
  const identity = opts.leaderElection?.identity ?? "sandbox-operator";
  const events = (kc: k8s.KubeConfig) =>
    new EventRecorder({ kubeConfig: kc, component: "sandbox-operator", instance: identity, log });
  const poolEvents = events(poolWriter);
  const claimEvents = events(claimWriter);

  let poolReconciler: PoolReconciler | undefined;
  const metrics = poolMetrics(registry, () => poolReconciler?.rows.values() ?? []);
  poolReconciler = new PoolReconciler({
    kubeConfig: poolWriter,
    pools,
    templates,
    sandboxes,
    status: new StatusWriter(
      poolWriter,
      { group: GROUP, version: VERSION, plural: POOL_PLURAL },
      registry,
      METRIC_PREFIX,
    ),
    events: poolEvents,
    metrics,
    defaultBackend: opts.defaultBackend,
    ...(opts.refillHold ? { refillHold: opts.refillHold } : {}),
    log,
  });
  const claimReconciler = new ClaimReconciler({
    kubeConfig: claimWriter,
    claims,
    pools,
    templates,
    sandboxes: claimSandboxes,
    status: new StatusWriter(
      claimWriter,
      { group: GROUP, version: VERSION, plural: CLAIM_PLURAL },
      registry,
      METRIC_PREFIX,
    ),
    events: claimEvents,
    metrics,
    defaultBackend: opts.defaultBackend,
    liveEgress: opts.liveEgress,
    log,
  });
  claims.on({ add: (c) => claimReconciler.noteSeen(c) });

  const nsKey = (obj: KubeObject, name: string | undefined) =>
    name ? keyOf({ metadata: { namespace: obj.metadata?.namespace, name } }) : undefined;
  const sandboxLabel = (label: string) => (obj: KubeObject) =>
    nsKey(obj, obj.metadata?.labels?.[label]);
  const lease = (suffix: string) =>
    opts.leaderElection && {
      kubeConfig: unlimited(kubeConfig),
      ...opts.leaderElection,
      name: `${opts.leaderElection.name}-${suffix}`,
    };

  const poolController = new Controller({
    name: "warmpool",
    primary: pools as Informer<KubeObject>,
    secondaries: [
      { informer: sandboxes as ObjectSource<KubeObject>, primaryKey: sandboxLabel(Labels.pool) },
      {
        informer: sandboxes as ObjectSource<KubeObject>,
        primaryKey: sandboxLabel(Labels.claimedFromPool),
      },
      // Listed before the workers start, so a template is never taken for missing; events fan out below.
      { informer: templates as Informer<KubeObject>, primaryKey: () => undefined },
    ],
    reconcile: (key, ctx) => poolReconciler.reconcile(key, ctx.signal),
    concurrency: opts.concurrency,
    leaderElection: lease("pools"),
    registry,
    metricPrefix: METRIC_PREFIX,
    log,
  });
  const claimController = new Controller({
    name: "claim",
    primary: claims as Informer<KubeObject>,
    secondaries: [
      {
        informer: claimSandboxes as ObjectSource<KubeObject>,
        primaryKey: sandboxLabel(Labels.claim),
      },
      { informer: pools as Informer<KubeObject>, primaryKey: () => undefined },
      { informer: templates as Informer<KubeObject>, primaryKey: () => undefined },
    ],
    reconcile: (key, ctx) => claimReconciler.reconcile(key, ctx.signal),
    concurrency: opts.claimConcurrency ?? CLAIM_CONCURRENCY_FACTOR * opts.concurrency,
    leaderElection: lease("claims"),
    registry,
    metricPrefix: METRIC_PREFIX,
    log,
  });
  controllers.push(poolController, claimController);

  // A template appearing, changing or going concerns every pool and waiting claim made from it.
  const onTemplate = (t: KubeObject) => {
    const ns = t.metadata?.namespace;
    const name = t.metadata?.name;
    for (const p of pools.list())
      if (p.metadata.namespace === ns && p.spec?.templateRef?.name === name)
        poolController.enqueue(keyOf(p));
    for (const c of claims.list())
      if (
        c.metadata.namespace === ns &&
        c.spec?.templateRef?.name === name &&
        !c.status?.sandboxName
      )
        claimController.enqueue(keyOf(c));
  };
  templates.on({ add: onTemplate, update: onTemplate, delete: onTemplate });

  poolController.start();
  claimController.start();

  return {
    ready: () => controllers.every((c) => c.ready()),
    stop: async (stopOpts) => {
      await Promise.all([
        poolController.stop({ ...stopOpts, drain: () => poolEvents.flush() }),
        claimController.stop({ ...stopOpts, drain: () => claimEvents.flush() }),
      ]);
    },
  };
}
