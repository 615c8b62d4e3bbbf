// Idle auto-suspend (issue 20, docs/idle.md): what the operator writes on a
// Sandbox it suspended for idleness, and the Events it records. API: the
// gateway, the SDK and `kubectl sandbox` read the annotation to tell a
// sandbox the operator put to sleep (woken by the next call) from one a
// person suspended (stays suspended until someone resumes it).
import { GROUP } from "./group.js";

export const IdleAnnotations = {
  /**
   * Set, with spec.suspended=true, when the operator suspended the sandbox
   * because nothing used it for spec.idleTimeout: the time it did (RFC 3339).
   * Removed when the sandbox is resumed.
   */
  suspendedAt: `${GROUP}/idle-suspended-at`,
} as const;

/** Event reasons of idle auto-suspend and resume-on-use. */
export const IdleEventReason = {
  /** The operator suspended the sandbox: unused for its idleTimeout. */
  IdleSuspended: "IdleSuspended",
} as const;
