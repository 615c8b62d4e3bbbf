// A sandbox's lifetime is computed from the resource alone (creation time plus
// ttlSeconds, or expiresAt), never from an in-memory timer or from its status:
// a restarted controller derives the same instant and requeues for it, and a
// status nobody can read cannot postpone it.
import type { SandboxSpec } from "../api/sandbox-spec.js";
import { parseTime } from "../kube/time.js";

export { rfc3339 } from "../kube/time.js";

export interface LifetimeInput {
  creationTimestamp: Date | string | undefined;
  lifetime: SandboxSpec["lifetime"];
}

/** The instant the sandbox expires, in epoch milliseconds. */
export function expiryTime({ creationTimestamp, lifetime }: LifetimeInput): number {
  if (lifetime.expiresAt !== undefined) {
    // The schema admits only times parseTime reads; NaN would mean "never", so fall back to now.
    return parseTime(lifetime.expiresAt) ?? Date.now();
  }
  const created =
    creationTimestamp === undefined ? Date.now() : new Date(creationTimestamp).getTime();
  return created + (lifetime.ttlSeconds ?? 0) * 1000;
}

/** Milliseconds until expiry (0 once expired). */
export function remaining(expiresAtMs: number, nowMs: number): number {
  return Math.max(0, expiresAtMs - nowMs);
}
