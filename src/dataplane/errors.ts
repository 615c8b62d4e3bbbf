// Typed errors of the data plane. A process that exits non-zero is a result
// (ExecResult.exitCode), never one of these.

/** Base class: everything the data plane throws is one of these. */
export class SandboxError extends Error {
  override name = "SandboxError";
}

/** The agent refused: `code` is its error code (an errno name where the kernel refused). */
export class AgentError extends SandboxError {
  override name = "AgentError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly path?: string,
  ) {
    super(message);
  }
}

/** The credential was missing or wrong (401). */
export class UnauthorizedError extends AgentError {
  override name = "UnauthorizedError";
}

/** A path, process or route does not exist (404). */
export class NotFoundError extends AgentError {
  override name = "NotFoundError";
}

/** The kernel refused the workload's user (EACCES, EPERM, EROFS). */
export class PermissionDeniedError extends AgentError {
  override name = "PermissionDeniedError";
}

/** argv[0] could not be found or started. */
export class ProcessStartError extends AgentError {
  override name = "ProcessStartError";
}

/** The Sandbox resource (or its runtime objects) does not exist. */
export class SandboxNotFoundError extends SandboxError {
  override name = "SandboxNotFoundError";
}

/** The Sandbox exists but its data plane cannot be reached yet. */
export class SandboxNotReadyError extends SandboxError {
  override name = "SandboxNotReadyError";
}

/**
 * The sandbox is suspended and a call does not wake it: a person suspended it
 * (only sandboxes the operator suspended for idleness resume on use), or
 * resume on use is turned off. `code` says which (docs/idle.md).
 */
export class SandboxSuspendedError extends SandboxError {
  override name = "SandboxSuspendedError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A claim will not be served: it failed or expired, its template does not
 * exist, or its sandbox's name is taken. `reason` is the claim's condition
 * reason (src/api/pool-conditions.ts ClaimReason), the message its message.
 */
export class ClaimFailedError extends SandboxError {
  override name = "ClaimFailedError";
  constructor(
    readonly claim: string,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/** A wait ran out (waitUntilReady, a request timeout). */
export class TimeoutError extends SandboxError {
  override name = "TimeoutError";
}

/** The agent answered something the protocol does not allow. */
export class ProtocolError extends SandboxError {
  override name = "ProtocolError";
}

export function agentErrorOf(
  status: number,
  body: { code: string; message: string; path?: string } | undefined,
  fallback: string,
): AgentError {
  const code = body?.code ?? `HTTP_${status}`;
  const message = body?.message ?? fallback;
  if (status === 401) return new UnauthorizedError(status, code, message, body?.path);
  if (status === 404) return new NotFoundError(status, code, message, body?.path);
  if (code === "NOT_EXECUTABLE") return new ProcessStartError(status, code, message, body?.path);
  if (status === 403) return new PermissionDeniedError(status, code, message, body?.path);
  return new AgentError(status, code, message, body?.path);
}
