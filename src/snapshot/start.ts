// Composition root of the SandboxSnapshot controller: informers for snapshots
// and Sandboxes, the reconciler with each enabled backend's copier, a status
// writer, finalizers and events behind the write gate, on a Lease of its own
// (like the pool and claim controllers).
import type * as k8s from "@kubernetes/client-node";
import type Docker from "dockerode";
import type { Registry } from "prom-client";
import { GROUP, SANDBOX_PLURAL, SNAPSHOT_PLURAL, VERSION } from "../api/group.js";
import type { Sandbox } from "../api/sandbox.js";
import type { SandboxSnapshot } from "../api/snapshot.js";
import type { BackendName } from "../backends/backend.js";
import { PodSnapshots } from "../backends/pod/snapshots.js";
import { Controller } from "../controller/controller.js";
import { EventRecorder } from "../controller/events.js";
import { Finalizers } from "../controller/finalizers.js";
import { Informer, type KubeObject } from "../controller/informer.js";
import { StatusWriter } from "../controller/status-writer.js";
import { gateWrites, NotLeaderError } from "../controller/write-gate.js";
import { unlimited } from "../kube/config.js";
import { keyOf } from "../kube/object-key.js";
import type { Logger } from "../observability/logger.js";
import { METRIC_PREFIX } from "../observability/metrics.js";
import { type DockerSnapshotter, SnapshotReconciler } from "./controller.js";

export interface SnapshotControllerOptions {
  kubeConfig: k8s.KubeConfig;
  namespaces: string[];
  defaultBackend: BackendName;
  /** The docker backend, when enabled: its copies are made with helper containers of `image`. */
  docker?: { client: Docker; owner: string; image: string };
  concurrency: number;
  leaderElection?: { namespace: string; name: string; identity: string; leaseDurationMs?: number };
  registry: Registry;
  log: Logger;
}

export interface RunningSnapshotController {
  ready(): boolean;
  stop(opts?: { release?: boolean }): Promise<void>;
}

const SNAPSHOT_RESOURCE = { group: GROUP, version: VERSION, plural: SNAPSHOT_PLURAL };

export async function startSnapshotController(
  opts: SnapshotControllerOptions,
): Promise<RunningSnapshotController> {
  const { kubeConfig, log, registry } = opts;
  const informer = <T extends KubeObject>(resource: string) =>
    new Informer<T>({
      kubeConfig,
      apiPath: `/apis/${GROUP}/${VERSION}`,
      resource,
      namespaces: opts.namespaces,
      log,
    });
  const snapshots = informer<SandboxSnapshot & KubeObject>(SNAPSHOT_PLURAL);
  const sandboxes = informer<Sandbox & KubeObject>(SANDBOX_PLURAL);

  let controller: Controller | undefined;
  const writer = gateWrites(kubeConfig, () => {
    if (!controller) throw new NotLeaderError("the controller has not started");
    controller.writeGate();
  });
  const identity = opts.leaderElection?.identity ?? "sandbox-operator";
  const events = new EventRecorder({
    kubeConfig: writer,
    component: "sandbox-operator",
    instance: identity,
    log,
  });

  let docker: DockerSnapshotter | undefined;
  if (opts.docker) {
    // Loaded only when enabled, as the docker backend is (see src/cli/controller.ts).
    const { DockerSnapshots } = await import("../backends/docker/snapshots.js");
    const { isUnavailable, orUndefined } = await import("../backends/docker/client.js");
    const client = opts.docker.client;
    const copies = new DockerSnapshots(client, opts.docker.image, opts.docker.owner);
    docker = {
      volumeExists: async (name) => !!(await orUndefined(client.getVolume(name).inspect())),
      take: (ref, volume) => copies.take(ref, volume),
      remove: (ref) => copies.remove(ref),
      isUnavailable,
    };
  }

  const reconciler = new SnapshotReconciler({
    snapshots,
    sandboxes,
    status: new StatusWriter(writer, SNAPSHOT_RESOURCE, registry, METRIC_PREFIX),
    finalizers: new Finalizers(writer, SNAPSHOT_RESOURCE),
    events,
    defaultBackend: opts.defaultBackend,
    pod: new PodSnapshots(writer),
    ...(docker ? { docker } : {}),
    log,
  });

  controller = new Controller({
    name: "snapshot",
    primary: snapshots as Informer<KubeObject>,
    // Listed before the workers start; a Sandbox's changes fan out to its snapshots below.
    secondaries: [{ informer: sandboxes as Informer<KubeObject>, primaryKey: () => undefined }],
    reconcile: (key, ctx) => reconciler.reconcile(key, ctx.signal),
    concurrency: opts.concurrency,
    leaderElection: opts.leaderElection && {
      kubeConfig: unlimited(kubeConfig),
      ...opts.leaderElection,
      name: `${opts.leaderElection.name}-snapshots`,
    },
    registry,
    metricPrefix: METRIC_PREFIX,
    log,
  });

  // A Sandbox appearing, getting its workspace or going concerns the snapshots
  // of it that are still being taken (Ready and Failed ones are final). An
  // index by source keeps a Sandbox's status write from scanning every snapshot.
  const bySource = new Map<string, Set<string>>();
  const sourceKey = (snap: SandboxSnapshot & KubeObject) =>
    `${snap.metadata.namespace}/${snap.spec?.source?.sandboxName}`;
  const unindex = (snap: SandboxSnapshot & KubeObject) => {
    const set = bySource.get(sourceKey(snap));
    set?.delete(keyOf(snap));
    if (set?.size === 0) bySource.delete(sourceKey(snap));
  };
  const index = (snap: SandboxSnapshot & KubeObject) => {
    unindex(snap);
    const phase = snap.status?.phase;
    if (phase === "Ready" || phase === "Failed") return;
    const k = sourceKey(snap);
    bySource.set(k, (bySource.get(k) ?? new Set()).add(keyOf(snap)));
  };
  snapshots.on({ add: index, update: index, delete: unindex });
  const onSandbox = (s: KubeObject) => {
    for (const k of bySource.get(keyOf(s)) ?? []) controller!.enqueue(k);
  };
  sandboxes.on({ add: onSandbox, update: onSandbox, delete: onSandbox });
  controller.start();

  return {
    ready: () => !!controller?.ready(),
    stop: async (stopOpts) => {
      await controller?.stop({ ...stopOpts, drain: () => events.flush() });
      await events.flush();
    },
  };
}
