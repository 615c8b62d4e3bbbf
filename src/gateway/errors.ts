// Typed refusals: every one carries the HTTP status and a stable code the
// audit line and the metrics use as the result.
export class GatewayError extends Error {
  override name = "GatewayError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds a client should wait before trying again (Retry-After), when that helps. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export const unauthenticated = (message: string, code = "UNAUTHENTICATED") =>
  new GatewayError(401, code, message);
export const forbidden = (message: string, code = "FORBIDDEN") =>
  new GatewayError(403, code, message);
