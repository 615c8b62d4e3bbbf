// Desired status of a sandbox from what the backend observed and its lifetime,
// and what a status says (how long a stall has lasted, whether a write makes
// the sandbox Ready, which phase change is news). Pure: the reconciler hands
// the result to the status writer, which writes only when it differs from what
// is stored.
import type { V1ObjectMeta } from "@kubernetes/client-node";
import { ConditionReason, ConditionType } from "../api/conditions.js";
import type { Condition, SandboxStatus } from "../api/sandbox-status.js";
import type { BackendEvent, BackendName, Observation } from "../backends/backend.js";
import { findCondition, setCondition } from "../controller/conditions.js";
import { parseTime, rfc3339 } from "../kube/time.js";

/** What a status is computed from: the object's metadata and the status it has now (the readable part). */
export interface Recorded {
  metadata: V1ObjectMeta;
  status?: SandboxStatus;
}
type Sandbox = Recorded;

export interface StatusInput {
  sandbox: Recorded;
  backend: BackendName;
  observation: Observation;
  expiresAtMs: number;
  now: Date;
}

type ConditionUpdate = Omit<Condition, "lastTransitionTime" | "observedGeneration">;

/** Applies condition updates in order, moving lastTransitionTime only on a status change. */
export function withConditions(
  sandbox: Sandbox,
  now: Date,
  updates: ConditionUpdate[],
): Condition[] {
  const generation = sandbox.metadata.generation;
  let conditions = sandbox.status?.conditions ?? [];
  for (const update of updates) {
    conditions = setCondition(conditions, { ...update, observedGeneration: generation }, now);
  }
  return conditions;
}

const ready = (status: boolean, reason: string, message: string): ConditionUpdate => ({
  type: ConditionType.Ready,
  status: status ? "True" : "False",
  reason,
  message,
});

const notExpired: ConditionUpdate = {
  type: ConditionType.Expired,
  status: "False",
  reason: ConditionReason.NotExpired,
  message: "the lifetime has not run out",
};

/** A previous Invalid=True is cleared once the spec is valid again. */
function validAgain(sandbox: Sandbox): ConditionUpdate[] {
  return findCondition(sandbox.status?.conditions, ConditionType.Invalid)
    ? [
        {
          type: ConditionType.Invalid,
          status: "False",
          reason: ConditionReason.Valid,
          message: "the spec is valid",
        },
      ]
    : [];
}

export function observedStatus({
  sandbox,
  backend,
  observation: o,
  expiresAtMs,
  now,
}: StatusInput): SandboxStatus {
  const egressReady = o.egressReady;
  // Ready means the workload is ready *and* its egress is enforced.
  const egressBlocks = o.ready && egressReady !== undefined && !egressReady.ready;
  const updates: ConditionUpdate[] = [
    egressBlocks
      ? ready(false, egressReady.reason, egressReady.message)
      : ready(o.ready, o.reason, o.message),
    notExpired,
    ...validAgain(sandbox),
  ];
  const stalled = findCondition(sandbox.status?.conditions, ConditionType.Stalled);
  if (o.stalled) {
    updates.push({
      type: ConditionType.Stalled,
      status: "True",
      reason: o.reason,
      message: o.message,
    });
  } else if (stalled) {
    updates.push({
      type: ConditionType.Stalled,
      status: "False",
      reason: ConditionReason.Progressing,
      message: "the workload is making progress",
    });
  }
  if (findCondition(sandbox.status?.conditions, ConditionType.Suspended)) {
    // Running again after a suspension (or on the way): no longer suspended.
    updates.push({
      type: ConditionType.Suspended,
      status: "False",
      reason: ConditionReason.Resumed,
      message: "resumed: the workload runs again on the same workspace",
    });
  }
  if (o.workspaceReady) {
    updates.push({
      type: ConditionType.WorkspaceReady,
      status: o.workspaceReady.ready ? "True" : "False",
      reason: o.workspaceReady.reason,
      message: o.workspaceReady.message,
    });
  }
  if (egressReady) {
    updates.push({
      type: ConditionType.EgressReady,
      status: egressReady.ready ? "True" : "False",
      reason: egressReady.reason,
      message: egressReady.message,
    });
  }
  return compact({
    phase: o.phase,
    conditions: withConditions(sandbox, now, updates),
    observedGeneration: sandbox.metadata.generation,
    backend,
    podName: o.podName,
    containerId: o.containerId,
    ip: o.ip,
    endpoints: o.endpoints?.length ? o.endpoints : undefined,
    startedAt: o.startedAt,
    expiresAt: rfc3339(expiresAtMs),
    finishedAt: o.finishedAt,
    exitCode: o.exitCode,
    workspace: o.workspace ?? sandbox.status?.workspace,
    reason: o.phase === "Running" || o.phase === "Pending" ? undefined : o.reason,
    message: o.phase === "Running" || o.phase === "Pending" ? undefined : o.message,
  });
}

/** The sandbox failed because the workload stayed stalled longer than the stall timeout. */
export function stalledFailedStatus(
  current: SandboxStatus,
  sandbox: Sandbox,
  o: Observation,
  graceSeconds: number,
  now: Date,
): SandboxStatus {
  const message = `${o.message} (stalled for more than ${graceSeconds}s)`;
  return compact({
    ...current,
    phase: "Failed",
    conditions: withConditions(sandbox, now, [ready(false, o.reason, message)]),
    reason: o.reason,
    message,
    finishedAt: rfc3339(now.getTime()),
  });
}

export function expiredStatus(sandbox: Sandbox, expiresAtMs: number, now: Date): SandboxStatus {
  const at = rfc3339(expiresAtMs);
  return compact({
    ...sandbox.status,
    phase: "Expired",
    conditions: withConditions(sandbox, now, [
      ready(false, ConditionReason.Expired, `the lifetime ran out at ${at}`),
      {
        type: ConditionType.Expired,
        status: "True",
        reason: ConditionReason.LifetimeElapsed,
        message: `the lifetime ran out at ${at}; the workload was removed`,
      },
    ]),
    observedGeneration: sandbox.metadata.generation,
    expiresAt: at,
    finishedAt: sandbox.status?.finishedAt ?? at,
    ip: undefined,
    endpoints: undefined,
    reason: ConditionReason.Expired,
    message: `the lifetime ran out at ${at}`,
  });
}

export function invalidStatus(
  sandbox: Sandbox,
  message: string,
  now: Date,
  reason: ConditionReason = ConditionReason.InvalidSpec,
  expiresAtMs?: number,
): SandboxStatus {
  return compact({
    ...sandbox.status,
    phase: sandbox.status?.phase ?? "Pending",
    conditions: withConditions(sandbox, now, [
      ready(false, reason, message),
      { type: ConditionType.Invalid, status: "True", reason, message },
    ]),
    observedGeneration: sandbox.metadata.generation,
    expiresAt: expiresAtMs === undefined ? sandbox.status?.expiresAt : rfc3339(expiresAtMs),
    reason,
    message,
  });
}

/** How long the workload has been stalled: since the Stalled condition last turned True. */
export function stalledDuration(sandbox: Recorded, now: Date): number {
  const stalled = findCondition(sandbox.status?.conditions, ConditionType.Stalled);
  if (stalled?.status !== "True") return 0;
  const since = parseTime(stalled.lastTransitionTime);
  return since === undefined ? 0 : Math.max(0, now.getTime() - since);
}

/** Whether this is the controller's own verdict that the sandbox failed for stalling. */
export function failedForStalling(status: SandboxStatus | undefined): boolean {
  return (
    status?.phase === "Failed" &&
    findCondition(status.conditions, ConditionType.Stalled)?.status === "True"
  );
}

/**
 * Seconds from creation to Ready, on the write that makes the sandbox Ready
 * (once per sandbox: the next status already was Ready); undefined otherwise.
 */
export function readySeconds(
  before: Recorded,
  after: SandboxStatus,
  now: Date,
): number | undefined {
  const was = findCondition(before.status?.conditions, ConditionType.Ready)?.status === "True";
  const is = findCondition(after.conditions, ConditionType.Ready)?.status === "True";
  const created = before.metadata.creationTimestamp;
  if (!is || was || !created) return undefined;
  // Ready again after a suspension is a resume, not a start: not creation-to-Ready.
  if (findCondition(before.status?.conditions, ConditionType.Suspended)) return undefined;
  return (now.getTime() - new Date(created).getTime()) / 1000;
}

/**
 * The Event a phase change deserves. A new sandbox being Pending says nothing
 * its creation did not: no Event (one write less per sandbox); later changes,
 * back to Pending included, get one.
 */
export function phaseEvent(
  before: SandboxStatus | undefined,
  after: SandboxStatus,
): BackendEvent | undefined {
  const from = before?.phase;
  const to = after.phase;
  if (!to || to === from) return undefined;
  if (from === undefined && to === "Pending") return undefined;
  return {
    type: to === "Failed" ? "Warning" : "Normal",
    reason: to,
    message: after.message ?? `sandbox is ${to.toLowerCase()}`,
  };
}

/** Drops undefined fields so comparisons with stored status are exact. */
function compact<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
