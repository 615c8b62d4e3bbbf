// The objects a sandbox's spec asks for, built once per spec. Building them
// hashes the spec (a stable JSON serialisation and SHA-256 per object), which
// CPU profiles at scale showed to be the largest part of a reconcile; most
// reconciles are of an unchanged spec (the Pod's status moved), so they reuse
// the last result.
import type { V1NetworkPolicy, V1Pod, V1Service } from "@kubernetes/client-node";
import type { Sandbox } from "../../api/sandbox.js";
import type { GatewayAccess } from "./agent.js";
import type { EgressOptions } from "./egress.js";
import { desiredNetworkPolicy } from "./network-policy.js";
import { desiredPod } from "./pod.js";
import { desiredService } from "./service.js";

export interface Desired {
  pod: V1Pod;
  networkPolicy: V1NetworkPolicy;
  service: V1Service | undefined;
}

interface Entry {
  /** What besides the spec the objects are built from. */
  identity: string;
  desired: Desired;
}

/**
 * Desired objects by spec object. The reconciler reads a Sandbox's spec once
 * per generation and hands the same (never mutated) object to every reconcile
 * of it, so identity is the cache key; a new spec is a new object. Weak: a spec
 * no longer read takes its entry with it. Callers must not mutate the result.
 */
export class DesiredObjects {
  private readonly bySpec = new WeakMap<object, Entry>();

  constructor(
    private readonly egress: EgressOptions,
    private readonly gateway?: GatewayAccess,
  ) {}

  of(sandbox: Sandbox): Desired {
    const { name, namespace, uid } = sandbox.metadata;
    const identity = `${namespace}/${name}/${uid}`;
    const hit = this.bySpec.get(sandbox.spec);
    if (hit?.identity === identity) return hit.desired;
    const desired = {
      pod: desiredPod(sandbox, this.egress, this.gateway),
      networkPolicy: desiredNetworkPolicy(sandbox, this.gateway?.namespace),
      service: desiredService(sandbox),
    };
    this.bySpec.set(sandbox.spec, { identity, desired });
    return desired;
  }
}
