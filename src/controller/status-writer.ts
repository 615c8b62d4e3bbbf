// Writes the status subresource, and only when the status actually changes: an
// idle object costs no API writes. The write is a JSON merge patch of just what
// changed, carrying the cached resourceVersion as a precondition, so a status
// computed from a stale cache is refused (ConflictError, retried at once from a
// fresher cache) instead of overwriting something newer.
//
// Right after a write the cache still holds the version we wrote from; a
// reconcile from that view (another event for the same object, say) would only
// earn a 409. The writer remembers which version each of its writes started
// from and skips writing from it again: the watch event for our own write is
// on its way and reconciles the object once more, from the version we wrote.
//
// A write whose reconcile was aborted (leadership lost) is not sent; the
// KubeConfig's write gate refuses it too once the Lease is known lost.
import { isDeepStrictEqual } from "node:util";
import type * as k8s from "@kubernetes/client-node";
import { Counter, type Registry } from "prom-client";
import { keyOf } from "../kube/object-key.js";
import { fromApiError } from "./errors.js";
import { type ResourceRef, rawRequest, resourcePath } from "./raw-request.js";
import { notLeaderCause } from "./write-gate.js";

export interface StatusObject {
  metadata: { name?: string; namespace?: string; resourceVersion?: string; generation?: number };
  status?: object;
}

/**
 * What a write did: `written`; `unchanged` (the cache already says so); or
 * `awaitingCache`: the cached object is the version a previous write of ours
 * started from, so the cache has not caught up; nothing was sent, and the watch
 * event for that write brings the object back.
 */
export type StatusWriteResult = "written" | "unchanged" | "awaitingCache";

/**
 * What a writer tells its listeners, in order, about each write it sends:
 * `sending` (the whole status it makes, before the request leaves), then
 * `written` (the object the apiserver returned) or `failed` (nothing was
 * stored). Another component of the same process can act on a write before
 * its watch event (see own-status-source.ts); one that acts on `sending` must
 * undo on `failed`.
 */
export type StatusWriteNotice =
  | { type: "sending"; key: string; resourceVersion?: string; status: object }
  | { type: "written"; key: string; resourceVersion?: string; written?: StatusObject }
  | { type: "failed"; key: string; resourceVersion?: string };

/** Where a writer's notices can be followed. */
export interface StatusWriteFeed {
  /** Follow every later write; the function returned stops following. */
  listen(listener: (notice: StatusWriteNotice) => void): () => void;
}

/**
 * How long a remembered write holds off writes from the version it started from.
 * The watch event normally lands in milliseconds; past this a missed event costs
 * at most a 409, never a stuck status.
 */
const AWAIT_CACHE_MS = 30_000;

export class StatusWriter implements StatusWriteFeed {
  private readonly listeners = new Set<(notice: StatusWriteNotice) => void>();
  private readonly counter: Counter<"resource">;
  /** Status writes made, for tests and debugging (the metric counts the same). */
  writes = 0;
  /** Object key -> the resourceVersion our last write started from, when, and the object it made. */
  private readonly writtenFrom = new Map<
    string,
    { resourceVersion: string; atMs: number; written?: StatusObject }
  >();

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
   * generation). Writes nothing when the cached status already says so, or when
   * the cache has not caught up with our previous write (see StatusWriteResult).
   * Throws ConflictError (someone else changed the object) or NotFoundError;
   * the signal's reason (nothing sent) once `signal` has aborted.
   */
  async write(
    obj: StatusObject,
    status: object,
    { signal }: { signal?: AbortSignal } = {},
  ): Promise<StatusWriteResult> {
    signal?.throwIfAborted();
    const { namespace, name, resourceVersion } = obj.metadata;
    const key = keyOf(obj);
    if (this.awaitingCache(key, resourceVersion)) return "awaitingCache";
    const desired = { ...status, observedGeneration: obj.metadata.generation };
    if (statusEqual(obj.status, desired)) return "unchanged";
    const path = resourcePath(this.resource, namespace, name, "status");
    let written: StatusObject | undefined;
    this.tell({ type: "sending", key, resourceVersion, status: desired });
    try {
      written = await rawRequest<StatusObject>(this.kubeConfig, "PATCH", path, {
        contentType: "application/merge-patch+json",
        body: {
          metadata: { resourceVersion },
          status: mergePatch(obj.status ?? {}, desired),
        },
        signal,
      });
    } catch (err) {
      this.tell({ type: "failed", key, resourceVersion });
      if (signal?.aborted || notLeaderCause(err)) throw err;
      throw fromApiError(err);
    }
    this.tell({ type: "written", key, resourceVersion, written });
    // A patch that changed nothing on the server keeps the version: no event will come.
    if (resourceVersion && written?.metadata.resourceVersion !== resourceVersion)
      this.remember(key, resourceVersion, written);
    this.writes++;
    this.counter.inc({ resource: this.resource.plural });
    return "written";
  }

  listen(listener: (notice: StatusWriteNotice) => void): () => void {
    // A wrapper per call: the same function listening twice is told twice and unsubscribed once each.
    const own = (n: StatusWriteNotice) => listener(n);
    this.listeners.add(own);
    return () => void this.listeners.delete(own);
  }

  private tell(notice: StatusWriteNotice): void {
    for (const l of this.listeners) l(notice);
  }

  /**
   * The newest version of `obj` this writer knows: the object its last write
   * returned, when `obj` is the version that write started from (the cache has
   * not caught up yet); otherwise `obj`. A reconcile that starts from it need
   * not wait for the watch event of our own write: what it decides is decided
   * from what is stored, and its write carries the stored resourceVersion (a
   * 409 if anyone wrote since).
   */
  newest<T extends StatusObject>(obj: T): T {
    const last = this.writtenFrom.get(keyOf(obj));
    const { resourceVersion } = obj.metadata;
    if (!last?.written || last.resourceVersion !== resourceVersion) return obj;
    if (Date.now() - last.atMs >= AWAIT_CACHE_MS) return obj;
    return last.written as T;
  }

  private awaitingCache(key: string, resourceVersion: string | undefined): boolean {
    const last = this.writtenFrom.get(key);
    if (!last) return false;
    if (last.resourceVersion === resourceVersion && Date.now() - last.atMs < AWAIT_CACHE_MS)
      return true;
    this.writtenFrom.delete(key); // the cache moved on (or the event is long overdue)
    return false;
  }

  private remember(key: string, resourceVersion: string, written?: StatusObject): void {
    const now = Date.now();
    // Re-inserted so the map stays in write order and the sweep stops at the first fresh entry.
    this.writtenFrom.delete(key);
    this.writtenFrom.set(key, {
      resourceVersion,
      atMs: now,
      // Only a whole object (with its new resourceVersion) can stand in for the cache's.
      ...(written?.metadata?.resourceVersion ? { written } : {}),
    });
    // Objects deleted right after a write never come back to clear their entry.
    for (const [k, v] of this.writtenFrom) {
      if (now - v.atMs < AWAIT_CACHE_MS) break;
      this.writtenFrom.delete(k);
    }
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
