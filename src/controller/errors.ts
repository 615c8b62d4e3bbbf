// Two kinds of failure, handled differently: a user's mistake becomes a status
// condition and is not retried (retrying cannot fix it); anything else is
// transient and retried with per-key exponential backoff.
import * as k8s from "@kubernetes/client-node";

/** A problem only the resource's author can fix. Carries a CamelCase reason for conditions. */
export class PermanentError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = "PermanentError";
  }
}

export function isPermanent(err: unknown): err is PermanentError {
  return err instanceof PermanentError;
}

/** HTTP status of a Kubernetes API error, if it is one. */
export function apiStatus(err: unknown): number | undefined {
  if (err instanceof k8s.ApiException) return err.code;
  // ApiError (raw requests) and Watch errors carry statusCode.
  const code = (err as { statusCode?: unknown })?.statusCode;
  return typeof code === "number" ? code : undefined;
}

export const isNotFound = (err: unknown) => apiStatus(err) === 404;
export const isConflict = (err: unknown) => apiStatus(err) === 409;

/** The message of an API error (the Status' message), else the error's own. */
export function errorMessage(err: unknown): string {
  if (err instanceof k8s.ApiException) {
    try {
      const body = typeof err.body === "string" ? JSON.parse(err.body) : err.body;
      if (body?.message) return `${body.message} (HTTP ${err.code})`;
    } catch {
      // not JSON
    }
    return `HTTP ${err.code}`;
  }
  return err instanceof Error ? err.message : String(err);
}
