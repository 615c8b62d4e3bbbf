// A sandbox's lifetime is computed from the resource alone (creation time plus
// ttlSeconds, or expiresAt), never from an in-memory timer: a restarted
// controller derives the same instant and requeues for it.
import type { SandboxSpec } from "../api/sandbox-spec.js";

export interface LifetimeInput {
  creationTimestamp: Date | string | undefined;
  lifetime: SandboxSpec["lifetime"];
}

/** The instant the sandbox expires, in epoch milliseconds. */
export function expiryTime({ creationTimestamp, lifetime }: LifetimeInput): number {
  if (lifetime.expiresAt !== undefined) return Date.parse(lifetime.expiresAt);
  const created =
    creationTimestamp === undefined ? Date.now() : new Date(creationTimestamp).getTime();
  return created + (lifetime.ttlSeconds ?? 0) * 1000;
}

/** Milliseconds until expiry (0 once expired). */
export function remaining(expiresAtMs: number, nowMs: number): number {
  return Math.max(0, expiresAtMs - nowMs);
}

/** RFC 3339 with second precision, as Kubernetes writes times. */
export function rfc3339(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}
