// What a claim writes on a Sandbox: the binding patch that moves a pooled
// sandbox to the claim, and the cold sandbox made for it. Pure builders; the
// shell sends them.
import type { V1OwnerReference } from "@kubernetes/client-node";
import { API_VERSION, CLAIM_KIND, SANDBOX_KIND } from "../api/group.js";
import { Labels, MANAGED_BY } from "../api/labels.js";
import type { SandboxClaim } from "../api/pools.js";
import type { SandboxSpec } from "../api/sandbox-spec.js";
import { rfc3339 } from "../kube/time.js";
import { claimPolicy } from "./warm.js";

export function claimOwner(claim: SandboxClaim): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: CLAIM_KIND,
    name: claim.metadata.name!,
    uid: claim.metadata.uid!,
    controller: true,
    blockOwnerDeletion: true,
  };
}

function claimLabels(claim: SandboxClaim, pool?: string): Record<string, string> {
  return {
    ...claim.spec.labels,
    [Labels.managedBy]: MANAGED_BY,
    [Labels.claim]: claim.metadata.name!,
    [Labels.claimUid]: claim.metadata.uid!,
    ...(pool ? { [Labels.claimedFromPool]: pool } : {}),
  };
}

/** The lifetime the claim's sandbox gets: an absolute instant counted from the claim. */
function lifetimeOf(claim: SandboxClaim, template: SandboxSpec, expiresAtMs: number) {
  return {
    expiresAt: rfc3339(expiresAtMs),
    onExpire: claim.spec.lifetime?.onExpire ?? template.lifetime.onExpire,
  };
}

/**
 * A JSON merge patch taking a pooled sandbox for `claim`. It carries the
 * resourceVersion the pooled sandbox was read at: the apiserver applies it
 * only if nobody wrote the sandbox since, so of two claims racing for one
 * sandbox exactly one wins and the other gets a 409 and picks again. The
 * pool's label goes (it stops counting the sandbox), the owner becomes the
 * claim (deleting the claim deletes it, deleting the pool does not), and the
 * lifetime restarts from the claim.
 */
export function bindPatch(
  claim: SandboxClaim,
  sandbox: { resourceVersion: string; labels?: Record<string, string> },
  template: SandboxSpec,
  pool: string,
  expiresAtMs: number,
) {
  return {
    metadata: {
      resourceVersion: sandbox.resourceVersion,
      labels: { [Labels.pool]: null, ...claimLabels(claim, pool) },
      ...(claim.spec.annotations ? { annotations: claim.spec.annotations } : {}),
      ownerReferences: [claimOwner(claim)],
    },
    spec: {
      network: { egress: claimPolicy(claim.spec, template) },
      lifetime: { ttlSeconds: null, ...lifetimeOf(claim, template, expiresAtMs) },
    },
  };
}

/**
 * The sandbox made for a claim no pooled sandbox can serve: named after the
 * claim, with the cleanup finalizer its backend needs already in place
 * (`created`: withFinalizers in src/sandbox/finalizer-at-create.ts).
 */
export function coldSandbox(
  claim: SandboxClaim,
  template: SandboxSpec,
  expiresAtMs: number,
  created: { finalizers?: string[] } = {},
) {
  const env = new Map((template.env ?? []).map((e) => [e.name, e]));
  for (const e of claim.spec.env ?? []) env.set(e.name, e);
  const spec: SandboxSpec = {
    ...template,
    ...(env.size ? { env: [...env.values()] } : {}),
    ...(claim.spec.resources ? { resources: claim.spec.resources } : {}),
    network: { ...template.network, egress: claimPolicy(claim.spec, template) },
    lifetime: lifetimeOf(claim, template, expiresAtMs),
  };
  return {
    apiVersion: API_VERSION,
    kind: SANDBOX_KIND,
    metadata: {
      name: claim.metadata.name!,
      namespace: claim.metadata.namespace!,
      ...created,
      labels: claimLabels(claim),
      ...(claim.spec.annotations ? { annotations: claim.spec.annotations } : {}),
      ownerReferences: [claimOwner(claim)],
    },
    spec,
  };
}
