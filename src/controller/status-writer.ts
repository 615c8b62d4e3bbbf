// Writes the status subresource, and only when the status actually changes: an
// idle object costs no API writes. The write is a JSON merge patch of just what
// changed, carrying the cached resourceVersion as a precondition, so a status
// computed from a stale cache is refused (ConflictError, retried at once from a
// fresher cache) instead of overwriting something newer.
import { isDeepStrictEqual } from "node:util";
import type * as k8s from "@kubernetes/client-node";
import { Counter, type Registry } from "prom-client";
import { fromApiError } from "./errors.js";
import { type ResourceRef, rawRequest, resourcePath } from "./raw-request.js";

export interface StatusObject {
  metadata: { name?: string; namespace?: string; resourceVersion?: string; generation?: number };
  status?: object;
}

export class StatusWriter {
  private readonly counter: Counter<"resource">;
  /** Status writes made, for tests and debugging (the metric counts the same). */
  writes = 0;

  constructor(
    private readonly kubeConfig: k8s.KubeConfig,
    private readonly resource: ResourceRef,
    registry: Registry,
    prefix: string,
  ) {
    const name = `${prefix}_status_writes_total`;
    this.counter =
      (registry.getSingleMetric(name) as Counter<"resource"> | undefined) ??
      new Counter({
        name,
        help: "Writes to the status subresource",
        labelNames: ["resource"] as const,
        registers: [registry],
      });
  }

  /**
   * Make the object's status `status` (plus observedGeneration = the object's
   * generation). Writes nothing when the cached status already says so.
   * Returns whether it wrote; throws ConflictError (stale cache) or NotFoundError.
   */
  async write(obj: StatusObject, status: object): Promise<boolean> {
    const desired = { ...status, observedGeneration: obj.metadata.generation };
    if (statusEqual(obj.status, desired)) return false;
    const path = resourcePath(this.resource, obj.metadata.namespace, obj.metadata.name, "status");
    try {
      await rawRequest(this.kubeConfig, "PATCH", path, {
        contentType: "application/merge-patch+json",
        body: {
          metadata: { resourceVersion: obj.metadata.resourceVersion },
          status: mergePatch(obj.status ?? {}, desired),
        },
      });
    } catch (err) {
      throw fromApiError(err);
    }
    this.writes++;
    this.counter.inc({ resource: this.resource.plural });
    return true;
  }
}

/** Deep equality of two statuses, ignoring the order of conditions and absent (undefined/null) fields. */
export function statusEqual(a: object | undefined, b: object | undefined): boolean {
  return isDeepStrictEqual(normalize(a ?? {}), normalize(b ?? {}));
}

function normalize(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalize);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined || v === null) continue;
    out[k] =
      k === "conditions" && Array.isArray(v)
        ? [...v].sort((x, y) => String(x?.type).localeCompare(String(y?.type))).map(normalize)
        : normalize(v);
  }
  return out;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** The RFC 7386 merge patch that turns `from` into `to`: changed keys, removed ones as null. */
export function mergePatch(
  from: Record<string, unknown> | object,
  to: Record<string, unknown> | object,
): Record<string, unknown> {
  const a = from as Record<string, unknown>;
  const b = to as Record<string, unknown>;
  const patch: Record<string, unknown> = {};
  for (const key of Object.keys(a)) {
    if (a[key] !== undefined && (b[key] === undefined || b[key] === null)) patch[key] = null;
  }
  for (const [key, value] of Object.entries(b)) {
    if (value === undefined || value === null) continue;
    const old = a[key];
    if (isObject(old) && isObject(value)) {
      const nested = mergePatch(old, value);
      if (Object.keys(nested).length > 0) patch[key] = nested;
    } else if (!isDeepStrictEqual(old, value)) {
      // Arrays (conditions too) are replaced whole: merge patch cannot do better.
      patch[key] = value;
    }
  }
  return patch;
}
