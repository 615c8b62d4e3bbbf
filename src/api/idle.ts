// Idle auto-suspend (issue 20, docs/idle.md): how the operator marks a
// Sandbox it suspended for idleness, and the Events it records. API: the
// gateway, the SDK and `kubectl sandbox` read the mark to tell a sandbox the
// operator put to sleep (woken by the next call) from one a person suspended
// (stays suspended until someone resumes it).
import { ConditionReason } from "./conditions.js";
import { Annotations } from "./labels.js";

/**
 * Set with spec.suspended=true when the operator suspended the sandbox
 * because nothing used it for spec.idleTimeout (the reconciler reads it into
 * the Suspended condition's reason; the time is status.suspendedAt). Removed
 * when the sandbox is resumed.
 */
export const IdleMark = {
  annotation: Annotations.suspendReason,
  value: ConditionReason.IdleTimeout,
} as const;

/** Event reasons of idle auto-suspend. */
export const IdleEventReason = {
  /** The operator suspended the sandbox: unused for its idleTimeout. */
  IdleSuspended: "IdleSuspended",
} as const;
