// Create, read, replace, merge-patch and delete one kind's objects as plain
// JSON. The typed clients of client-node run every request and response
// through ObjectSerializer (a walk of the whole object against its model,
// building class instances) and the undici fetch machinery: in a profile of
// the controller at scale that was ~15 % of its CPU for the Pod and
// NetworkPolicy writes alone. Plain JSON is also what the informers cache, so
// an object a write returns and one read from a cache look alike.
import type * as k8s from "@kubernetes/client-node";
import type { OwnWrites } from "./own-writes.js";
import { type ResourceRef, rawRequest, resourcePath } from "./raw-request.js";

export interface DeleteOptions {
  /** Delete only this incarnation: never a newer object that reuses the name. */
  uid?: string;
  gracePeriodSeconds?: number;
  propagationPolicy?: "Background" | "Foreground" | "Orphan";
}

export class KindClient<T> {
  constructor(
    private readonly kc: k8s.KubeConfig,
    private readonly ref: ResourceRef,
    /** Where the objects our writes return are remembered (their watch events are echoes). */
    private readonly writes?: OwnWrites,
  ) {}

  async create(namespace: string, body: T, signal?: AbortSignal): Promise<T> {
    return this.wrote(
      await rawRequest<T>(this.kc, "POST", resourcePath(this.ref, namespace), { body, signal }),
    );
  }

  read(name: string, namespace: string, signal?: AbortSignal): Promise<T> {
    return rawRequest<T>(this.kc, "GET", resourcePath(this.ref, namespace, name), { signal });
  }

  async replace(name: string, namespace: string, body: T, signal?: AbortSignal): Promise<T> {
    return this.wrote(
      await rawRequest<T>(this.kc, "PUT", resourcePath(this.ref, namespace, name), {
        body,
        signal,
      }),
    );
  }

  /**
   * A JSON merge patch (RFC 7386). Its result is remembered as our own write
   * only when the patch pins the resourceVersion it was decided from. An
   * unpinned patch lands on whatever version is current, which may carry a
   * change we never saw (a Pod's image edited between our read and our
   * relabel); that version's event is then no echo, and must be reconciled.
   */
  async mergePatch(
    name: string,
    namespace: string,
    patch: unknown,
    signal?: AbortSignal,
  ): Promise<T> {
    const obj = await rawRequest<T>(this.kc, "PATCH", resourcePath(this.ref, namespace, name), {
      body: patch,
      contentType: "application/merge-patch+json",
      signal,
    });
    const pinned = (patch as { metadata?: { resourceVersion?: string } } | null)?.metadata
      ?.resourceVersion;
    return pinned ? this.wrote(obj) : obj;
  }

  private wrote(obj: T): T {
    this.writes?.record(obj as Parameters<OwnWrites["record"]>[0]);
    return obj;
  }

  delete(
    name: string,
    namespace: string,
    { uid, gracePeriodSeconds, propagationPolicy }: DeleteOptions = {},
    signal?: AbortSignal,
  ): Promise<unknown> {
    const body: Record<string, unknown> = {};
    if (uid) body.preconditions = { uid };
    if (gracePeriodSeconds !== undefined) body.gracePeriodSeconds = gracePeriodSeconds;
    if (propagationPolicy) body.propagationPolicy = propagationPolicy;
    return rawRequest(this.kc, "DELETE", resourcePath(this.ref, namespace, name), {
      body: Object.keys(body).length ? body : undefined,
      signal,
    });
  }
}
