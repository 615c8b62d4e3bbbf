// What to do about one SandboxSnapshot, decided purely from the snapshot and
// its source Sandbox as the caches show them; the shell (controller.ts) does
// it. One step per reconcile, each leaving a mark on the object that the next
// one starts from (a restart at any point converges):
//
//   1. docker only: add the finalizer, before anything exists outside Kubernetes;
//   2. record the source (backend, sandbox UID, workspace) as phase Pending;
//   3. take the copy (idempotent on both backends) and record Ready or Failed.
//
// Ready and Failed are final: a snapshot is immutable once taken, and a failed
// one is deleted and made again rather than retried behind the user's back.
// Deleting it removes the backend's copy first (docker: the finalizer; pod:
// the VolumeSnapshot is owned by the SandboxSnapshot, garbage collection).

import type { SnapshotStatus } from "../api/snapshot.js";
import { SnapshotConditionType, SnapshotReason } from "../api/snapshot-conditions.js";
import type { BackendName } from "../backends/backend.js";
import { type ConditionLike, setCondition } from "../controller/conditions.js";
import { rfc3339 } from "../kube/time.js";

/** Removes the docker backend's snapshot volume before the SandboxSnapshot goes. */
export const SNAPSHOT_FINALIZER = "sandboxing.dev/snapshot-cleanup";

/**
 * How long a missing source is waited for before the snapshot fails: a
 * Sandbox and a snapshot of it applied together may reach this controller's
 * two caches in either order.
 */
export const SOURCE_GRACE_MS = 30_000;

/** How often a copy the controller cannot watch (a VolumeSnapshot, a volume being made) is looked at. */
export const POLL_MS = 5_000;

export interface SnapshotView {
  name: string;
  creationMs: number;
  deleting: boolean;
  finalizers: readonly string[];
  status?: SnapshotStatus;
}

export interface SourceView {
  name: string;
  uid: string;
  deleting: boolean;
  backend: BackendName;
  hasWorkspace: boolean;
  /** status.workspace.name: the volume or PVC, once the backend has said which. */
  workspace?: string;
}

export interface SnapshotInput {
  snapshot: SnapshotView;
  source?: SourceView;
  /** Backends this operator serves. */
  backends: ReadonlySet<BackendName>;
  nowMs: number;
}

export type SnapshotAction =
  | { type: "none" }
  | { type: "addFinalizer" }
  /** Remove the docker snapshot volume, then the finalizer. */
  | { type: "cleanup" }
  | { type: "take"; backend: BackendName; workspace: string };

export interface SnapshotDecision {
  action: SnapshotAction;
  /** The status to write (before the action's outcome is known); absent: none. */
  status?: SnapshotStatus;
  requeueAfterMs?: number;
}

export function decideSnapshot(input: SnapshotInput): SnapshotDecision {
  const { snapshot, source, nowMs } = input;
  const status = snapshot.status ?? {};
  if (snapshot.deleting) {
    return {
      action: snapshot.finalizers.includes(SNAPSHOT_FINALIZER)
        ? { type: "cleanup" }
        : { type: "none" },
    };
  }
  if (status.phase === "Ready" || status.phase === "Failed") return { action: { type: "none" } };

  const began = status.sourceSandboxUid;
  if (!source || source.deleting || (began && source.uid !== began)) {
    const why = !source
      ? `sandbox ${sourceName(snapshot, source)} does not exist`
      : source.deleting
        ? `sandbox ${source.name} is being deleted`
        : `sandbox ${source.name} was deleted and made again (UID ${source.uid}, not ${began})`;
    const waited = nowMs - snapshot.creationMs;
    if (!began && !source && waited < SOURCE_GRACE_MS) {
      return {
        action: { type: "none" },
        status: pending(status, SnapshotReason.SourceNotFound, `${why} (yet)`, nowMs),
        requeueAfterMs: SOURCE_GRACE_MS - waited,
      };
    }
    return {
      action: { type: "none" },
      status: failed(status, SnapshotReason.SourceNotFound, why, nowMs),
    };
  }
  if (!source.hasWorkspace) {
    return {
      action: { type: "none" },
      status: failed(
        status,
        SnapshotReason.NoWorkspace,
        `sandbox ${source.name} has no spec.workspace: its working directory goes with it, there is nothing persistent to copy`,
        nowMs,
      ),
    };
  }
  if (!input.backends.has(source.backend)) {
    return {
      action: { type: "none" },
      status: failed(
        status,
        SnapshotReason.SnapshotUnsupported,
        `sandbox ${source.name} runs on the ${source.backend} backend, which this operator does not serve`,
        nowMs,
      ),
    };
  }
  if (!source.workspace) {
    // The backend has not named the workspace yet: the sandbox's next status brings us back.
    return {
      action: { type: "none" },
      status: pending(
        status,
        SnapshotReason.Creating,
        `waiting for the workspace of sandbox ${source.name}`,
        nowMs,
      ),
    };
  }
  if (source.backend === "docker" && !snapshot.finalizers.includes(SNAPSHOT_FINALIZER)) {
    return { action: { type: "addFinalizer" } };
  }
  const recorded =
    status.phase === "Pending" &&
    status.backend === source.backend &&
    status.sourceSandboxUid === source.uid &&
    status.sourceWorkspace === source.workspace;
  if (!recorded) {
    return {
      action: { type: "none" },
      status: {
        ...pending(
          status,
          SnapshotReason.Creating,
          `copying workspace ${source.workspace} of sandbox ${source.name}`,
          nowMs,
        ),
        backend: source.backend,
        sourceSandboxUid: source.uid,
        sourceWorkspace: source.workspace,
      },
    };
  }
  return { action: { type: "take", backend: source.backend, workspace: source.workspace } };
}

function sourceName(s: SnapshotView, source: SourceView | undefined): string {
  return source?.name ?? s.name;
}

type Phase = NonNullable<SnapshotStatus["phase"]>;

function withPhase(
  status: SnapshotStatus,
  phase: Phase,
  reason: SnapshotReason,
  message: string,
  nowMs: number,
): SnapshotStatus {
  const conditions = setCondition(
    status.conditions as ConditionLike[] | undefined,
    {
      type: SnapshotConditionType.Ready,
      status: phase === "Ready" ? "True" : "False",
      reason,
      message,
    },
    new Date(nowMs),
  );
  return { ...status, phase, reason, message, conditions };
}

export const pending = (
  s: SnapshotStatus,
  reason: SnapshotReason,
  message: string,
  nowMs: number,
) => withPhase(s, "Pending", reason, message, nowMs);

export const failed = (s: SnapshotStatus, reason: SnapshotReason, message: string, nowMs: number) =>
  withPhase(s, "Failed", reason, message, nowMs);

/** The status once the backend's copy is complete. */
export function ready(
  s: SnapshotStatus,
  copy: { handle: string; sizeBytes?: number; checksum?: string; readyAt?: string },
  nowMs: number,
): SnapshotStatus {
  const size = copy.sizeBytes === undefined ? "" : ` (${copy.sizeBytes} bytes)`;
  return {
    ...withPhase(
      s,
      "Ready",
      SnapshotReason.SnapshotReady,
      `copy ${copy.handle} complete${size}`,
      nowMs,
    ),
    handle: copy.handle,
    ...(copy.sizeBytes === undefined ? {} : { sizeBytes: copy.sizeBytes }),
    ...(copy.checksum ? { checksum: copy.checksum } : {}),
    readyAt: copy.readyAt ?? rfc3339(new Date(nowMs)),
  };
}

/** The Event a status change deserves, if any: one per phase or reason change. */
export function eventFor(
  before: SnapshotStatus | undefined,
  after: SnapshotStatus,
): { type: "Normal" | "Warning"; reason: string; message: string } | undefined {
  if (before?.phase === after.phase && before?.reason === after.reason) return undefined;
  const message = after.message ?? "";
  if (after.phase === "Ready")
    return { type: "Normal", reason: SnapshotReason.SnapshotReady, message };
  if (after.phase === "Failed")
    return { type: "Warning", reason: after.reason ?? "Failed", message };
  if (after.reason === SnapshotReason.Creating)
    return { type: "Normal", reason: "Snapshotting", message };
  return { type: "Warning", reason: after.reason ?? "Pending", message };
}
