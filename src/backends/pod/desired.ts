// The objects a sandbox's spec asks for, built once per spec (for the
// sandboxes reconciled most recently). Building them
// hashes the spec (a stable JSON serialisation and SHA-256 per object), which
// CPU profiles at scale showed to be the largest part of a reconcile; most
// reconciles are of an unchanged spec (the Pod's status moved), so they reuse
// the last result.
import type { V1NetworkPolicy, V1Pod, V1Service } from "@kubernetes/client-node";
import { Labels } from "../../api/labels.js";
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
  /** The spec object the objects were built from (compared by identity). */
  spec: object;
  /** What besides the spec the objects are built from. */
  identity: string;
  desired: Desired;
}

/**
 * Sandboxes whose desired objects are kept. Measured: a set (Pod, NetworkPolicy)
 * holds ~8.5 KB of heap, so kept for every Sandbox it was 83 MiB at 10,000
 * sandboxes, about half the controller's heap there
 * (bench/results/scale/README.md). The reconciles that reuse them come in
 * bursts (create, Pending, Running within seconds); an idle sandbox is
 * reconciled every resync period, when rebuilding costs well under a millisecond.
 */
export const DESIRED_CACHE_MAX = 1024;

/**
 * Desired objects of the most recently reconciled sandboxes. The reconciler
 * reads a Sandbox's spec once per generation and hands the same (never
 * mutated) object to every reconcile of it, so the spec's identity says
 * whether an entry still holds; a new spec is a new object. Callers must not
 * mutate the result.
 */
export class DesiredObjects {
  /** In least-recently-used order (a hit is moved to the end). */
  private readonly byKey = new Map<string, Entry>();

  constructor(
    private readonly egress: EgressOptions,
    private readonly max = DESIRED_CACHE_MAX,
    private readonly gateway?: GatewayAccess,
  ) {}

  of(sandbox: Sandbox): Desired {
    const { name, namespace, uid, labels } = sandbox.metadata;
    const key = `${namespace}/${name}`;
    // The shard label is copied onto the objects; it moves without a new spec.
    const identity = `${uid}/${labels?.[Labels.shard] ?? ""}`;
    const hit = this.byKey.get(key);
    this.byKey.delete(key);
    if (hit?.spec === sandbox.spec && hit.identity === identity) {
      this.byKey.set(key, hit);
      return hit.desired;
    }
    const desired = {
      pod: desiredPod(sandbox, this.egress, this.gateway),
      networkPolicy: desiredNetworkPolicy(sandbox, this.egress.channel, this.gateway?.namespace),
      service: desiredService(sandbox),
    };
    this.byKey.set(key, { spec: sandbox.spec as object, identity, desired });
    if (this.byKey.size > this.max) {
      const oldest = this.byKey.keys().next().value;
      if (oldest !== undefined) this.byKey.delete(oldest);
    }
    return desired;
  }
}
