// Metadata every object of the pod backend carries: deterministic name, labels
// naming the Sandbox and its UID, and a controller owner reference so Kubernetes
// garbage collection removes them with the Sandbox.
import type { V1ObjectMeta, V1OwnerReference } from "@kubernetes/client-node";
import { API_VERSION, SANDBOX_KIND } from "../../api/group.js";
import { Annotations, Labels, MANAGED_BY } from "../../api/labels.js";
import type { Sandbox } from "../../api/sandbox.js";
import { specHash } from "../spec-hash.js";

export function ownerReference(sandbox: Sandbox): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: SANDBOX_KIND,
    name: sandbox.metadata.name!,
    uid: sandbox.metadata.uid!,
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** Labels selecting exactly this sandbox's workload (stable across spec changes). */
export function selectorLabels(sandbox: Sandbox): Record<string, string> {
  return { [Labels.sandboxUid]: sandbox.metadata.uid! };
}

/** The Sandbox's shard label, copied onto its objects: a sharded replica watches them by it. */
export function shardLabels(sandbox: Sandbox): Record<string, string> {
  const shard = sandbox.metadata.labels?.[Labels.shard];
  return shard ? { [Labels.shard]: shard } : {};
}

/** The labels that make an object visible to the operator's caches as this sandbox's. */
export function ownLabels(sandbox: Sandbox): Record<string, string> {
  return {
    [Labels.managedBy]: MANAGED_BY,
    [Labels.sandbox]: sandbox.metadata.name!,
    ...selectorLabels(sandbox),
    ...shardLabels(sandbox),
  };
}

export function objectMeta(sandbox: Sandbox, component: string, spec: unknown): V1ObjectMeta {
  return {
    name: sandbox.metadata.name!,
    namespace: sandbox.metadata.namespace!,
    labels: {
      [Labels.name]: "sandbox",
      [Labels.instance]: sandbox.metadata.name!,
      [Labels.component]: component,
      [Labels.managedBy]: MANAGED_BY,
      [Labels.partOf]: "sandbox-operator",
      [Labels.sandbox]: sandbox.metadata.name!,
      ...selectorLabels(sandbox),
      ...shardLabels(sandbox),
    },
    annotations: { [Annotations.specHash]: specHash(spec) },
    ownerReferences: [ownerReference(sandbox)],
  };
}

/** Whether `meta` carries every label `desired` sets. */
export function labelsMatch(meta: V1ObjectMeta | undefined, desired: V1ObjectMeta): boolean {
  return Object.entries(desired.labels ?? {}).every(([k, v]) => meta?.labels?.[k] === v);
}

/** Whether `meta` carries everything `desired` says (labels unless told not to, hash, owner). */
export function metadataMatches(
  meta: V1ObjectMeta | undefined,
  desired: V1ObjectMeta,
  { labels = true } = {},
): boolean {
  if (!meta) return false;
  const labelsOk = !labels || labelsMatch(meta, desired);
  const hashOk =
    meta.annotations?.[Annotations.specHash] === desired.annotations?.[Annotations.specHash];
  const ownerOk = meta.ownerReferences?.some(
    (o) => o.uid === desired.ownerReferences?.[0]?.uid && o.controller,
  );
  return labelsOk && hashOk && !!ownerOk;
}
