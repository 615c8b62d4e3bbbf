// Adding and removing a finalizer as a JSON patch that first tests the
// finalizers list is still what our cache says: a concurrent writer's change
// (another finalizer added or removed) is never clobbered, and unrelated
// changes (status, labels) do not make it fail, as a resourceVersion
// precondition would. A failed test is reported as a ConflictError: retry with
// a fresher cache. Nothing is sent once the reconcile's `signal` has aborted.
import type * as k8s from "@kubernetes/client-node";
import { apiStatus, ConflictError, fromApiError, NotFoundError } from "./errors.js";
import { type ResourceRef, rawRequest, resourcePath } from "./raw-request.js";
import { notLeaderCause } from "./write-gate.js";

export interface FinalizedObject {
  metadata: { name?: string; namespace?: string; finalizers?: string[] };
}

export type JsonPatchOp =
  | { op: "test" | "add" | "replace"; path: string; value: unknown }
  | { op: "remove"; path: string };

/** A JSON patch taking the finalizers from `current` (as cached; absent: undefined) to `next`. */
export function finalizersPatch(current: string[] | undefined, next: string[]): JsonPatchOp[] {
  // Testing for null passes only when the field is absent (RFC 6902 as the apiserver implements it).
  return [
    { op: "test", path: "/metadata/finalizers", value: current ?? null },
    { op: current ? "replace" : "add", path: "/metadata/finalizers", value: next },
  ];
}

export interface WriteOptions {
  /** The reconcile's signal: once aborted (leadership lost), nothing is sent. */
  signal?: AbortSignal;
}

export class Finalizers {
  constructor(
    private readonly kubeConfig: k8s.KubeConfig,
    private readonly resource: ResourceRef,
  ) {}

  /** Add `finalizer` unless the (cached) object has it already. */
  async add(obj: FinalizedObject, finalizer: string, opts: WriteOptions = {}): Promise<void> {
    const current = obj.metadata.finalizers;
    if (current?.includes(finalizer)) return;
    await this.patch(obj, finalizersPatch(current, [...(current ?? []), finalizer]), opts);
  }

  /** Remove `finalizer` if the (cached) object has it. */
  async remove(obj: FinalizedObject, finalizer: string, opts: WriteOptions = {}): Promise<void> {
    const current = obj.metadata.finalizers;
    if (!current?.includes(finalizer)) return;
    const next = current.filter((f) => f !== finalizer);
    try {
      await this.patch(obj, finalizersPatch(current, next), opts);
    } catch (err) {
      // Gone already: our previous removal let it be deleted, the cache had not caught up.
      if (!(err instanceof NotFoundError)) throw err;
    }
  }

  private async patch(
    obj: FinalizedObject,
    body: JsonPatchOp[],
    { signal }: WriteOptions,
  ): Promise<void> {
    const { name, namespace } = obj.metadata;
    try {
      await rawRequest(this.kubeConfig, "PATCH", resourcePath(this.resource, namespace, name), {
        contentType: "application/json-patch+json",
        body,
        signal,
      });
    } catch (err) {
      if (signal?.aborted || notLeaderCause(err)) throw err;
      // The apiserver answers a failed "test" with 422; in this patch nothing else can be invalid.
      if (apiStatus(err) === 422) {
        throw new ConflictError(`finalizers of ${namespace}/${name} changed meanwhile`, {
          cause: err,
        });
      }
      throw fromApiError(err);
    }
  }
}
