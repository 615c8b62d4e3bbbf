// Failures are sorted by what retrying can do about them:
// - PermanentError: the resource's author made a mistake; retrying cannot fix it,
//   so it becomes a status condition (CamelCase reason, human message) and is
//   not retried until the resource changes;
// - ConflictError: our view was stale (HTTP 409); retry at once from a fresher cache;
// - NotFoundError: the object is gone (HTTP 404); usually the cache will catch up;
// - anything else is transient: retried with per-key exponential backoff.
import * as k8s from "@kubernetes/client-node";

/**
 * Reasons are the caller's condition vocabulary (`Reason`); this package knows
 * none of them except REJECTED, the one it produces itself for a refused request.
 */
export class PermanentError<Reason extends string = string> extends Error {
  constructor(
    /** The reason of the condition that reports it, e.g. Unsupported. */
    readonly reason: Reason,
    message: string,
  ) {
    super(message);
    this.name = "PermanentError";
  }
}

/** The reason fromApiError gives a request the apiserver refused (400/422). */
export const REJECTED = "Rejected";

export class ConflictError extends Error {
  override name = "ConflictError";
}

export class NotFoundError extends Error {
  override name = "NotFoundError";
}

export type ErrorKind = "permanent" | "conflict" | "notFound" | "transient";

/** HTTP status of a Kubernetes API error (typed client, raw request or watch), if it is one. */
export function apiStatus(err: unknown): number | undefined {
  if (err instanceof k8s.ApiException) return err.code;
  const code = (err as { statusCode?: unknown } | undefined)?.statusCode;
  return typeof code === "number" ? code : undefined;
}

export function classifyError(err: unknown): ErrorKind {
  if (err instanceof PermanentError) return "permanent";
  if (err instanceof ConflictError) return "conflict";
  if (err instanceof NotFoundError) return "notFound";
  switch (apiStatus(err)) {
    case 409:
      return "conflict";
    case 404:
      return "notFound";
    case 400: // BadRequest
    case 422: // Invalid: the apiserver rejected what the spec made us build
      return "permanent";
    default: // 401/403 (RBAC may be fixed), 410, 429, 5xx, network errors
      return "transient";
  }
}

export const isPermanent = (err: unknown): err is PermanentError => err instanceof PermanentError;
export const isConflict = (err: unknown) => classifyError(err) === "conflict";
export const isNotFound = (err: unknown) => classifyError(err) === "notFound";

/**
 * An API error as one of the typed errors above: 409 → ConflictError,
 * 404 → NotFoundError, 400/422 → PermanentError (reason Rejected, the
 * apiserver's message); anything else is returned unchanged.
 */
export function fromApiError(err: unknown): unknown {
  const message = errorMessage(err);
  switch (classifyError(err)) {
    case "conflict":
      return err instanceof ConflictError ? err : new ConflictError(message, { cause: err });
    case "notFound":
      return err instanceof NotFoundError ? err : new NotFoundError(message, { cause: err });
    case "permanent":
      return err instanceof PermanentError ? err : new PermanentError(REJECTED, message);
    default:
      return err;
  }
}

/** The Kubernetes Status carried by an API error, if any. */
export function statusOf(err: unknown): { message?: string; reason?: string } | undefined {
  const body = (err as { body?: unknown } | undefined)?.body;
  if (typeof body === "object" && body !== null) return body;
  if (typeof body !== "string") return undefined;
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

/** A one-line description: the Status' message for API errors, else the error's own. */
export function errorMessage(err: unknown): string {
  if (err instanceof k8s.ApiException) {
    const status = statusOf(err);
    return status?.message ? `${status.message} (HTTP ${err.code})` : `HTTP ${err.code}`;
  }
  if (!(err instanceof Error)) return String(err);
  // A raw request's error (raw-request.ts): the apiserver's words, as for the typed clients.
  const code = (err as { statusCode?: unknown }).statusCode;
  const status = typeof code === "number" ? statusOf(err) : undefined;
  if (status?.message) return `${status.message} (HTTP ${code})`;
  // fetch says only "fetch failed"; why (refused, reset, TLS) is in the cause.
  const cause = (err as { cause?: unknown }).cause;
  return cause instanceof Error && cause.message ? `${err.message}: ${cause.message}` : err.message;
}
