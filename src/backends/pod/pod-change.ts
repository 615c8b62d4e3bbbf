// Which Pod updates can change a sandbox's reconcile. Most updates to a
// sandbox Pod are the kubelet's (or kwok's) bookkeeping: the binding, the
// conditions and timestamps of each probe round. The reconcile reads a Pod
// only through its metadata (ownership, labels, the policy annotations, the
// deletion mark), its container images (drift) and what observePod and the
// sidecar's restart count make of its status; an update that leaves all of
// those as they were would be reconciled to the same result, so it need not
// enqueue the sandbox. Pure; whatever the backend starts reading of a Pod must
// be compared here too.
import { isDeepStrictEqual } from "node:util";
import type { V1ObjectMeta, V1Pod } from "@kubernetes/client-node";
import { egressSidecarRestarts, observePod } from "./observe.js";

/** Whether the backend could decide differently on `pod` than on `old` (the same Pod, an earlier version). */
export function podChangeMatters(pod: V1Pod, old: V1Pod): boolean {
  return (
    !metadataEqual(pod.metadata, old.metadata) ||
    !isDeepStrictEqual(images(pod), images(old)) ||
    egressSidecarRestarts(pod) !== egressSidecarRestarts(old) ||
    !isDeepStrictEqual(observePod(pod), observePod(old))
  );
}

/** Metadata apart from the resourceVersion, which every write moves. */
function metadataEqual(a: V1ObjectMeta | undefined, b: V1ObjectMeta | undefined): boolean {
  const { resourceVersion: _a, managedFields: _am, ...restA } = a ?? {};
  const { resourceVersion: _b, managedFields: _bm, ...restB } = b ?? {};
  return isDeepStrictEqual(restA, restB);
}

/** The containers by name and image: what drift is judged on (see pod.ts). */
function images(pod: V1Pod): string[] {
  const spec = pod.spec;
  if (!spec) return [];
  return [...(spec.initContainers ?? []), ...(spec.containers ?? [])].map(
    (c) => `${c.name}=${c.image}`,
  );
}
