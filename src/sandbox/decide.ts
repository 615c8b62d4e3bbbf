// The reconciler's decisions, as a pure function: from a Sandbox as read
// (spec, metadata, the readable part of its status), what its backend reported
// so far, and the time, decide the next status, the effects to perform and when
// to look again. The shell (reconciler.ts) performs the effects; nothing here
// does I/O, so every path is table-tested (decide.test.ts).
//
// A reconcile takes at most two rounds: the first may ask the backend one
// question (a probe: ensure, observe or remove); the second decides from its
// answer. Lifetime and deletion depend only on spec and metadata; the status
// is recomputed from what the backend observes.
import { ConditionReason } from "../api/conditions.js";
import type { SandboxStatus } from "../api/sandbox-status.js";
import type { BackendEvent, BackendName, Observation, SuspendResult } from "../backends/backend.js";
import { expiryTime, remaining } from "./lifetime.js";
import type { SandboxView } from "./read.js";
import {
  expiredStatus,
  failedForStalling,
  invalidStatus,
  observedStatus,
  stalledDuration,
  stalledFailedStatus,
} from "./status.js";
import { isRecordedSuspended, suspendReasonOf, suspendStatus } from "./suspend.js";

export const SANDBOX_FINALIZER = "sandboxing.dev/cleanup";

/** Longest single wait: timers beyond this are re-armed by a fresh reconcile. */
export const MAX_REQUEUE_MS = 60 * 60 * 1000;
/** Poll interval while a backend is still tearing something down. */
export const TEARDOWN_POLL_MS = 1000;
/** Retry bounds for an object the apiserver refused (quota, LimitRange, admission). */
export const REFUSAL_RETRY_MIN_MS = 1000;
export const REFUSAL_RETRY_MAX_MS = 30_000;

export interface DecideConfig {
  defaultBackend: BackendName;
  /** The backends this operator runs, and whether each needs the finalizer. */
  backends: Partial<Record<BackendName, { needsFinalizer: boolean }>>;
  stallTimeoutSeconds: number;
}

/** What the backend answered to the probe of the previous round. */
export interface Observed {
  /** ensure: what exists after creating and repairing. */
  ensured?: Observation;
  /** ensure: the backend cannot do what the spec asks (a PermanentError). */
  refused?: { reason: ConditionReason; message: string };
  /** observe: what exists of a finished sandbox (null: nothing). */
  observed?: Observation | null;
  /** remove: true once nothing of the sandbox is left. */
  removed?: boolean;
  /** suspend: whether the workload's compute is released, and the workspace kept. */
  suspended?: SuspendResult;
}

export type Probe = "ensure" | "observe" | "remove" | "suspend";

export type Action =
  | { type: "addFinalizer" }
  | { type: "removeFinalizer" }
  /** Delete the Sandbox (this incarnation: UID precondition). */
  | { type: "delete" }
  | { type: "event"; event: BackendEvent };

export type Decision =
  /** Ask the backend, then decide again with its answer. */
  | { probe: Probe }
  | {
      probe?: undefined;
      /** Write this status (the writer skips it when nothing changed). */
      status?: SandboxStatus;
      /** After the status write; skipped when the write found the cache behind. */
      actions: Action[];
      requeueAfter?: number;
      /** For the log: why the sandbox cannot be applied. */
      invalid?: { reason: ConditionReason; message: string };
    };

const done = (requeueAfter?: number, actions: Action[] = []): Decision => ({
  actions,
  requeueAfter: requeueAfter === undefined ? undefined : cap(requeueAfter),
});

const expiredEvent = (message: string): Action => ({
  type: "event",
  event: { type: "Normal", reason: "Expired", message },
});

export function decide(
  view: SandboxView,
  observed: Observed,
  now: Date,
  config: DecideConfig,
): Decision {
  const backendName = view.backend ?? config.defaultBackend;
  const backend = config.backends[backendName];
  const finalizers = view.metadata.finalizers ?? [];

  // Deletion: only the finalizer's cleanup is ours; owner references do the rest.
  if (view.metadata.deletionTimestamp) {
    if (!finalizers.includes(SANDBOX_FINALIZER)) return done();
    if (backend && observed.removed === undefined) return { probe: "remove" };
    if (backend && !observed.removed) return done(TEARDOWN_POLL_MS);
    return done(undefined, [{ type: "removeFinalizer" }]);
  }

  const expiresAtMs = view.lifetime
    ? expiryTime({ creationTimestamp: view.metadata.creationTimestamp, lifetime: view.lifetime })
    : undefined;
  const untilExpiry = expiresAtMs === undefined ? undefined : remaining(expiresAtMs, now.getTime());

  if (backend?.needsFinalizer && view.spec && !finalizers.includes(SANDBOX_FINALIZER)) {
    // The update event brings the sandbox back with the finalizer in place.
    return done(undefined, [{ type: "addFinalizer" }]);
  }

  // Expiry comes before everything else, an invalid spec included: a sandbox
  // that cannot be applied still ends on time.
  if (expiresAtMs !== undefined && untilExpiry === 0 && view.lifetime) {
    if (view.lifetime.onExpire === "Delete") {
      return done(undefined, [
        expiredEvent("the lifetime ran out; deleting the sandbox"),
        { type: "delete" },
      ]);
    }
    if (backend && observed.removed === undefined) return { probe: "remove" };
    const actions =
      view.status?.phase === "Expired"
        ? []
        : [expiredEvent("the lifetime ran out; the workload was removed and the sandbox retained")];
    return {
      status: expiredStatus(view, expiresAtMs, now),
      actions,
      requeueAfter: backend && !observed.removed ? TEARDOWN_POLL_MS : undefined,
    };
  }

  if (view.invalid || !view.spec) {
    return invalid(view, now, ConditionReason.InvalidSpec, view.invalid ?? "no spec", expiresAtMs);
  }
  if (!backend) {
    return invalid(
      view,
      now,
      ConditionReason.Unsupported,
      `backend "${backendName}" is not enabled on this operator`,
      expiresAtMs,
    );
  }
  // From here the spec, and so the lifetime, is readable.
  const until = untilExpiry ?? 0;
  const expiresAt = expiresAtMs ?? now.getTime();

  // The controller's verdict that a stalled workload failed: remove it (again,
  // if a removal was interrupted); it would otherwise keep pulling or crash-looping.
  if (failedForStalling(view.status)) {
    if (observed.removed === undefined) return { probe: "remove" };
    return done(observed.removed ? until : Math.min(until, TEARDOWN_POLL_MS));
  }

  // A finished sandbox keeps its record (and a finished pod its logs) until the
  // lifetime ends; its workload is not run again. What exists still wins over
  // a phase written by hand: a workload that runs, or has finished, says what
  // the phase is. Nothing there, or nothing to tell (Pending: a backend that
  // cannot be reached, a container half removed), leaves the record standing:
  // recomputing from it would start the workload again.
  if (isFinished(view.status)) {
    if (observed.observed === undefined) return { probe: "observe" };
    if (observed.observed === null || observed.observed.phase === "Pending") return done(until);
    return fromObservation(view, observed.observed, backendName, expiresAt, now, config);
  }

  // Suspended: the workload goes, the Sandbox and its workspace stay; the
  // lifetime (above) keeps counting. Once the record says Suspended at this
  // generation nothing is asked and nothing written: a suspended sandbox costs
  // no API calls, only a timer for its expiry. A finished sandbox (above)
  // stays finished: suspending it has nothing to release.
  if (view.spec.suspended) {
    const reason = suspendReasonOf(view.metadata);
    if (isRecordedSuspended(view, reason)) return done(until);
    if (observed.suspended === undefined) return { probe: "suspend" };
    const { released } = observed.suspended;
    return {
      status: suspendStatus({
        sandbox: view,
        backend: backendName,
        result: observed.suspended,
        reason,
        expiresAtMs: expiresAt,
        now,
      }),
      actions: [],
      requeueAfter: cap(released ? until : Math.min(until, TEARDOWN_POLL_MS)),
    };
  }

  if (observed.refused) {
    return invalid(view, now, observed.refused.reason, observed.refused.message, expiresAtMs);
  }
  if (!observed.ensured) return { probe: "ensure" };
  return fromObservation(view, observed.ensured, backendName, expiresAt, now, config);
}

function fromObservation(
  view: SandboxView,
  observation: Observation,
  backend: BackendName,
  expiresAtMs: number,
  now: Date,
  config: DecideConfig,
): Decision {
  const until = remaining(expiresAtMs, now.getTime());
  const status = observedStatus({ sandbox: view, backend, observation, expiresAtMs, now });
  if (!observation.stalled) return { status, actions: [], requeueAfter: cap(until) };

  const stalledFor = stalledDuration(view, now);
  const graceMs = config.stallTimeoutSeconds * 1000;
  if (stalledFor >= graceMs) {
    // Record the failure first: the terminal phase is what stops the workload
    // being recreated; the next round (the status write's own watch event)
    // removes it.
    return {
      status: stalledFailedStatus(status, view, observation, config.stallTimeoutSeconds, now),
      actions: [],
      requeueAfter: cap(Math.min(until, TEARDOWN_POLL_MS)),
    };
  }
  let requeue = Math.min(until, graceMs - stalledFor);
  if (observation.retry) {
    // Wait as long again as the refusal has lasted: exponential in effect, and
    // computed from the record, so a restart keeps the pace. Independent of
    // expiry, which still comes first.
    requeue = Math.min(
      requeue,
      Math.min(REFUSAL_RETRY_MAX_MS, Math.max(REFUSAL_RETRY_MIN_MS, stalledFor)),
    );
  }
  return { status, actions: [], requeueAfter: cap(requeue) };
}

/** A spec only the controller can judge invalid: a condition, and a look again at expiry. */
function invalid(
  view: SandboxView,
  now: Date,
  reason: ConditionReason,
  message: string,
  expiresAtMs: number | undefined,
): Decision {
  return {
    status: invalidStatus(view, message, now, reason, expiresAtMs),
    actions: [],
    requeueAfter:
      expiresAtMs === undefined ? undefined : cap(remaining(expiresAtMs, now.getTime())),
    invalid: { reason, message },
  };
}

function isFinished(status: SandboxStatus | undefined): boolean {
  const phase = status?.phase;
  return phase === "Succeeded" || phase === "Failed" || phase === "Expired";
}

/** Milliseconds to wait, +1 so a timer set for an instant fires after it; capped. */
export function cap(ms: number): number {
  return Math.min(Math.max(ms, 0) + 1, MAX_REQUEUE_MS);
}
