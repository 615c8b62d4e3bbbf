// The status of a sandbox being suspended or suspended (spec.suspended), and
// whether the record already says so. Pure; decide.ts calls it, the status
// writer writes only what differs.
import type { V1ObjectMeta } from "@kubernetes/client-node";
import { ConditionReason, ConditionType } from "../api/conditions.js";
import { Annotations } from "../api/labels.js";
import type { SandboxStatus } from "../api/sandbox-status.js";
import type { BackendName, SuspendResult } from "../backends/backend.js";
import { findCondition } from "../controller/conditions.js";
import { rfc3339 } from "../kube/time.js";
import { type Recorded, withConditions } from "./status.js";

export type SuspendReason = typeof ConditionReason.Suspended | typeof ConditionReason.IdleTimeout;

/** Why the sandbox is suspended: IdleTimeout when the auto-suspender said so, else a request. */
export function suspendReasonOf(metadata: V1ObjectMeta): SuspendReason {
  return metadata.annotations?.[Annotations.suspendReason] === ConditionReason.IdleTimeout
    ? ConditionReason.IdleTimeout
    : ConditionReason.Suspended;
}

/**
 * The record already says Suspended, for this generation and reason: nothing
 * to ask the backend and nothing to write.
 */
export function isRecordedSuspended(sandbox: Recorded, reason: SuspendReason): boolean {
  const status = sandbox.status;
  if (status?.phase !== "Suspended") return false;
  if (status.observedGeneration !== sandbox.metadata.generation) return false;
  const cond = findCondition(status.conditions, ConditionType.Suspended);
  return cond?.status === "True" && cond.reason === reason;
}

export interface SuspendStatusInput {
  sandbox: Recorded;
  backend: BackendName;
  result: SuspendResult;
  reason: SuspendReason;
  expiresAtMs: number;
  now: Date;
}

/**
 * Suspending (the workload is still going away: the phase it had stays) or
 * Suspended (gone). What described the running workload (pod, container, IP,
 * endpoints, start, exit) is dropped: none of it holds while suspended, and a
 * resume observes it afresh. The workspace is kept on the record.
 */
export function suspendStatus({
  sandbox,
  backend,
  result,
  reason,
  expiresAtMs,
  now,
}: SuspendStatusInput): SandboxStatus {
  const prior = sandbox.status;
  const why =
    reason === ConditionReason.IdleTimeout
      ? "suspended after its idle timeout"
      : "suspended on request (spec.suspended)";
  const message = result.released
    ? `${why}: the workload is removed, the workspace kept`
    : `${why}: removing the workload`;
  const conditions = withConditions(sandbox, now, [
    {
      type: ConditionType.Ready,
      status: "False",
      reason: result.released ? ConditionReason.Suspended : ConditionReason.Suspending,
      message,
    },
    {
      type: ConditionType.Suspended,
      status: result.released ? "True" : "False",
      reason: result.released ? reason : ConditionReason.Suspending,
      message,
    },
    {
      type: ConditionType.Expired,
      status: "False",
      reason: ConditionReason.NotExpired,
      message: "the lifetime has not run out",
    },
  ]).filter((c) => c.type !== ConditionType.Stalled);
  const status: SandboxStatus = {
    phase: result.released ? "Suspended" : (prior?.phase ?? "Pending"),
    conditions,
    observedGeneration: sandbox.metadata.generation,
    backend,
    expiresAt: rfc3339(expiresAtMs),
    suspendedAt: result.released ? (prior?.suspendedAt ?? rfc3339(now.getTime())) : undefined,
    workspace: result.workspace ?? prior?.workspace,
    reason: result.released ? reason : ConditionReason.Suspending,
    message,
  };
  return Object.fromEntries(
    Object.entries(status).filter(([, v]) => v !== undefined),
  ) as SandboxStatus;
}
