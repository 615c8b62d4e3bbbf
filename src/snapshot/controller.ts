// The SandboxSnapshot's shell: reads the snapshot and its source Sandbox from
// the caches, asks decideSnapshot, performs the one action it returns (a
// finalizer, a copy through the source's backend, the removal of the copy)
// and writes the status. Errors that a retry can cure (the Docker daemon or
// the apiserver unreachable) are thrown for the workqueue's backoff; what the
// backend refuses is recorded on the snapshot, never thrown.
import { API_VERSION, SNAPSHOT_KIND } from "../api/group.js";
import type { Sandbox } from "../api/sandbox.js";
import type { SandboxSnapshot, SnapshotStatus } from "../api/snapshot.js";
import { SnapshotReason } from "../api/snapshot-conditions.js";
import type { BackendName } from "../backends/backend.js";
import type { PodSnapshotOutcome, SnapshotRef } from "../backends/pod/snapshots.js";
import { errorMessage } from "../controller/errors.js";
import type { EventRecorder } from "../controller/events.js";
import type { Finalizers } from "../controller/finalizers.js";
import type { Informer, KubeObject } from "../controller/informer.js";
import type { StatusWriter } from "../controller/status-writer.js";
import type { Logger } from "../observability/logger.js";
import {
  decideSnapshot,
  eventFor,
  failed,
  POLL_MS,
  pending,
  ready,
  SNAPSHOT_FINALIZER,
  type SourceView,
} from "./decide.js";

/** The docker backend's copies, as this controller needs them (loaded only when docker is on). */
export interface DockerSnapshotter {
  volumeExists(name: string): Promise<boolean>;
  take(
    ref: SnapshotRef,
    volume: string,
  ): Promise<{ handle: string; sizeBytes: number; checksum: string }>;
  remove(ref: SnapshotRef): Promise<void>;
  /** The daemon could not be reached (retried), as opposed to answering with an error. */
  isUnavailable(err: unknown): boolean;
}

export interface PodSnapshotter {
  take(ref: SnapshotRef, sandbox: Sandbox, signal?: AbortSignal): Promise<PodSnapshotOutcome>;
}

export interface SnapshotReconcilerDeps {
  snapshots: Informer<SandboxSnapshot & KubeObject>;
  sandboxes: Informer<Sandbox & KubeObject>;
  status: StatusWriter;
  finalizers: Finalizers;
  events: EventRecorder;
  defaultBackend: BackendName;
  pod?: PodSnapshotter;
  docker?: DockerSnapshotter;
  log: Logger;
}

/** The copy could not be made for now (the daemon is unreachable): retried with backoff. */
export class SnapshotBackendUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SnapshotBackendUnavailableError";
  }
}

export class SnapshotReconciler {
  constructor(private readonly deps: SnapshotReconcilerDeps) {}

  async reconcile(
    key: string,
    signal: AbortSignal,
  ): Promise<{ requeueAfter?: number } | undefined> {
    const { deps } = this;
    const snap = deps.snapshots.get(key);
    if (!snap) return;
    const namespace = snap.metadata.namespace!;
    const ref: SnapshotRef = { namespace, name: snap.metadata.name!, uid: snap.metadata.uid! };
    // The CRD validates the spec; a cache holding something else is skipped, never a crash.
    const sourceName = snap.spec?.source?.sandboxName;
    const raw =
      typeof sourceName === "string" ? deps.sandboxes.get(`${namespace}/${sourceName}`) : undefined;
    const nowMs = Date.now();
    const backends = new Set<BackendName>();
    if (deps.pod) backends.add("pod");
    if (deps.docker) backends.add("docker");
    const decision = decideSnapshot({
      snapshot: {
        name: typeof sourceName === "string" ? sourceName : ref.name,
        creationMs: new Date(snap.metadata.creationTimestamp ?? nowMs).getTime(),
        deleting: !!snap.metadata.deletionTimestamp,
        finalizers: snap.metadata.finalizers ?? [],
        status: snap.status,
      },
      source: raw && this.sourceView(raw),
      backends,
      nowMs,
    });
    const action = decision.action;
    let status = decision.status;
    let requeueAfter = decision.requeueAfterMs;

    if (action.type === "cleanup") {
      if (!deps.docker) {
        throw new SnapshotBackendUnavailableError(
          `snapshot ${key} has a docker copy to remove, but the docker backend is not enabled`,
        );
      }
      await this.docker(ref, () => deps.docker!.remove(ref));
      await deps.finalizers.remove(snap, SNAPSHOT_FINALIZER, { signal });
      this.event(snap, "Normal", "Deleted", `removed snapshot volume of ${ref.name}`);
      return;
    }
    if (action.type === "addFinalizer") {
      await deps.finalizers.add(snap, SNAPSHOT_FINALIZER, { signal });
      return;
    }
    if (action.type === "take") {
      const current = snap.status ?? {};
      if (action.backend === "docker") {
        let outcome: Awaited<ReturnType<SnapshotReconciler["takeDocker"]>>;
        try {
          outcome = await this.takeDocker(ref, action.workspace, current, nowMs);
        } catch (err) {
          if (!(err instanceof SnapshotBackendUnavailableError)) throw err;
          // Said on the snapshot, then retried with the workqueue's backoff.
          const waiting = pending(current, SnapshotReason.BackendUnavailable, err.message, nowMs);
          await deps.status.write(snap, waiting, { signal }).catch(() => undefined);
          const e = eventFor(snap.status, waiting);
          if (e) this.event(snap, e.type, e.reason, e.message);
          throw err;
        }
        status = outcome.status;
        requeueAfter = outcome.requeueAfterMs;
      } else {
        const outcome = await deps.pod!.take(ref, raw!, signal);
        status = podStatus(current, outcome, Date.now());
        if (outcome.phase === "Pending") requeueAfter = POLL_MS;
      }
    }
    if (status) {
      await deps.status.write(snap, status, { signal });
      const e = eventFor(snap.status, status);
      if (e) this.event(snap, e.type, e.reason, e.message);
    }
    return requeueAfter === undefined ? undefined : { requeueAfter: Math.max(10, requeueAfter) };
  }

  private async takeDocker(
    ref: SnapshotRef,
    volume: string,
    current: SnapshotStatus,
    nowMs: number,
  ): Promise<{ status: SnapshotStatus; requeueAfterMs?: number }> {
    const docker = this.deps.docker!;
    // A mount of a missing volume would make an empty one: never copy that.
    if (!(await this.docker(ref, () => docker.volumeExists(volume)))) {
      return {
        status: pending(
          current,
          SnapshotReason.Creating,
          `waiting for workspace volume ${volume}`,
          nowMs,
        ),
        requeueAfterMs: POLL_MS,
      };
    }
    try {
      const copy = await this.docker(ref, () => docker.take(ref, volume));
      return { status: ready(current, copy, Date.now()) };
    } catch (err) {
      if (err instanceof SnapshotBackendUnavailableError) throw err;
      // The daemon answered with an error, or the copy broke: recorded, not retried.
      this.deps.log.warn(
        { snapshot: `${ref.namespace}/${ref.name}`, err: errorMessage(err) },
        "snapshot failed",
      );
      return {
        status: failed(
          current,
          SnapshotReason.SnapshotFailed,
          `copying volume ${volume}: ${errorMessage(err)}`,
          Date.now(),
        ),
      };
    }
  }

  /** Runs a docker call; an unreachable daemon becomes SnapshotBackendUnavailableError. */
  private async docker<T>(ref: SnapshotRef, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      if (this.deps.docker!.isUnavailable(err)) {
        throw new SnapshotBackendUnavailableError(
          `${SnapshotReason.BackendUnavailable}: the Docker daemon is unreachable (snapshot ${ref.namespace}/${ref.name}): ${errorMessage(err)}`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  private sourceView(s: Sandbox): SourceView {
    return {
      name: s.metadata.name!,
      uid: s.metadata.uid!,
      deleting: !!s.metadata.deletionTimestamp,
      backend: s.status?.backend ?? s.spec?.backend ?? this.deps.defaultBackend,
      hasWorkspace: !!s.spec?.workspace,
      workspace: s.status?.workspace?.name,
    };
  }

  private event(
    snap: SandboxSnapshot,
    type: "Normal" | "Warning",
    reason: string,
    message: string,
  ) {
    this.deps.events.record(
      { apiVersion: API_VERSION, kind: SNAPSHOT_KIND, metadata: snap.metadata },
      type,
      reason,
      message,
    );
  }
}

/** The pod backend's answer in the SandboxSnapshot's status. */
export function podStatus(
  current: SnapshotStatus,
  outcome: PodSnapshotOutcome,
  nowMs: number,
): SnapshotStatus {
  if (outcome.phase === "Ready") {
    return {
      ...ready(
        current,
        { handle: outcome.handle, sizeBytes: outcome.sizeBytes, readyAt: outcome.readyAt },
        nowMs,
      ),
      sourceWorkspace: outcome.sourceWorkspace,
    };
  }
  if (outcome.phase === "Failed") return failed(current, outcome.reason, outcome.message, nowMs);
  return {
    ...pending(current, outcome.reason, outcome.message, nowMs),
    ...(outcome.handle ? { handle: outcome.handle } : {}),
  };
}
