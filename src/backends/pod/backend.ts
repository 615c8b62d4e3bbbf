// The pod backend: a sandbox is a Pod, a NetworkPolicy and (with ports) a Service.
// Reads come from informer caches, so an idle sandbox costs no API calls; writes
// happen only when an object is missing or differs from what the spec says.
import * as k8s from "@kubernetes/client-node";
import { ConditionReason } from "../../api/conditions.js";
import type { Sandbox } from "../../api/sandbox.js";
import type { BackendContext, Observation, SandboxBackend } from "../backend.js";
import { type EgressOptions, POLICY_ANNOTATION } from "./egress.js";
import { metadataMatches } from "./metadata.js";
import { desiredNetworkPolicy } from "./network-policy.js";
import { observePod } from "./observe.js";
import { desiredPod } from "./pod.js";
import { desiredService, serviceEndpoints } from "./service.js";
import { containsAll } from "./subset.js";

/** Read access to what an informer has cached, keyed "namespace/name". */
export interface ObjectCache<T> {
  get(key: string): T | undefined;
}

export interface PodBackendDeps {
  kubeConfig: k8s.KubeConfig;
  egress: EgressOptions;
  pods: ObjectCache<k8s.V1Pod>;
  networkPolicies: ObjectCache<k8s.V1NetworkPolicy>;
  services: ObjectCache<k8s.V1Service>;
}

const keyOf = (s: Sandbox) => `${s.metadata.namespace}/${s.metadata.name}`;

export class PodBackend implements SandboxBackend {
  readonly name = "pod" as const;
  /** Owner references let Kubernetes garbage collection remove everything. */
  readonly needsFinalizer = false;
  private readonly core: k8s.CoreV1Api;
  private readonly networking: k8s.NetworkingV1Api;

  constructor(private readonly deps: PodBackendDeps) {
    this.core = deps.kubeConfig.makeApiClient(k8s.CoreV1Api);
    this.networking = deps.kubeConfig.makeApiClient(k8s.NetworkingV1Api);
  }

  async ensure(sandbox: Sandbox, ctx: BackendContext): Promise<Observation> {
    // The fence goes up before the workload exists.
    await this.ensureNetworkPolicy(sandbox, ctx);
    await this.ensureService(sandbox, ctx);
    const pod = await this.ensurePod(sandbox, ctx);
    return this.observation(sandbox, pod);
  }

  async observe(sandbox: Sandbox): Promise<Observation | undefined> {
    const pod = this.ownPod(sandbox);
    return pod ? this.observation(sandbox, pod) : undefined;
  }

  async remove(sandbox: Sandbox, ctx: BackendContext): Promise<boolean> {
    const { namespace, name } = sandbox.metadata as { namespace: string; name: string };
    const owned = <T extends { metadata?: k8s.V1ObjectMeta }>(o: T | undefined) =>
      o && isOwnedBy(o, sandbox) ? o : undefined;
    const pod = owned(this.deps.pods.get(keyOf(sandbox)));
    const np = owned(this.deps.networkPolicies.get(keyOf(sandbox)));
    const svc = owned(this.deps.services.get(keyOf(sandbox)));
    if (pod && !pod.metadata?.deletionTimestamp) {
      await ignoreNotFound(
        this.core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 }),
      );
      ctx.record({ type: "Normal", reason: "PodDeleted", message: `deleted pod ${name}` });
    }
    if (svc) await ignoreNotFound(this.core.deleteNamespacedService({ name, namespace }));
    // The NetworkPolicy goes last: the workload stays fenced while it shuts down.
    if (np && !pod) {
      await ignoreNotFound(this.networking.deleteNamespacedNetworkPolicy({ name, namespace }));
    }
    return !pod && !np && !svc;
  }

  private observation(sandbox: Sandbox, pod: k8s.V1Pod | undefined): Observation {
    const endpoints = serviceEndpoints(sandbox);
    if (!pod || pod.metadata?.deletionTimestamp) {
      return {
        phase: "Pending",
        ready: false,
        reason: ConditionReason.Creating,
        message: pod ? "waiting for the previous pod to terminate" : "creating the pod",
        endpoints,
      };
    }
    return { ...observePod(pod), endpoints };
  }

  private ownPod(sandbox: Sandbox): k8s.V1Pod | undefined {
    const pod = this.deps.pods.get(keyOf(sandbox));
    return pod && isOwnedBy(pod, sandbox) ? pod : undefined;
  }

  private async ensurePod(sandbox: Sandbox, ctx: BackendContext): Promise<k8s.V1Pod | undefined> {
    const desired = desiredPod(sandbox, this.deps.egress);
    const actual = this.deps.pods.get(keyOf(sandbox));
    const { namespace, name } = desired.metadata as { namespace: string; name: string };

    if (!actual) {
      return ignoreConflict(this.core.createNamespacedPod({ namespace, body: desired }));
    }
    if (actual.metadata?.deletionTimestamp) return actual;
    if (!isOwnedBy(actual, sandbox)) {
      await this.deleteStale(actual, ctx);
      return undefined;
    }
    const drift = podDrift(actual, desired);
    if (drift) {
      // Pods are immutable where it matters: recreate, and say why.
      await ignoreNotFound(
        this.core.deleteNamespacedPod({
          name,
          namespace,
          gracePeriodSeconds: 0,
          body: { preconditions: { uid: actual.metadata?.uid } },
        }),
      );
      ctx.record({
        type: "Normal",
        reason: "PodRecreated",
        message: `recreating pod ${name}: ${drift}`,
      });
      return undefined;
    }
    const policy = desired.metadata?.annotations?.[POLICY_ANNOTATION];
    if (actual.metadata?.annotations?.[POLICY_ANNOTATION] !== policy) {
      // In place: the kubelet rewrites the sidecar's policy file; the workload keeps running.
      await this.core.patchNamespacedPod(
        { name, namespace, body: { metadata: { annotations: { [POLICY_ANNOTATION]: policy } } } },
        k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
      );
      ctx.record({
        type: "Normal",
        reason: "EgressPolicyUpdated",
        message: "delivered the new egress policy to the running sidecar",
      });
    }
    return actual;
  }

  /** An object of the same name owned by an earlier Sandbox of that name (not yet collected). */
  private async deleteStale(actual: k8s.V1Pod, ctx: BackendContext): Promise<void> {
    const { name, namespace, uid } = actual.metadata ?? {};
    await ignoreNotFound(
      this.core.deleteNamespacedPod({
        name: name!,
        namespace: namespace!,
        gracePeriodSeconds: 0,
        body: { preconditions: { uid } },
      }),
    );
    ctx.record({
      type: "Normal",
      reason: "StalePodDeleted",
      message: `deleted pod ${name} left by an earlier sandbox of the same name`,
    });
  }

  private async ensureNetworkPolicy(sandbox: Sandbox, ctx: BackendContext): Promise<void> {
    await converge(
      desiredNetworkPolicy(sandbox),
      this.deps.networkPolicies.get(keyOf(sandbox)),
      ctx,
      {
        kind: "NetworkPolicy",
        create: (namespace, body) =>
          this.networking.createNamespacedNetworkPolicy({ namespace, body }),
        replace: (name, namespace, body) =>
          this.networking.replaceNamespacedNetworkPolicy({ name, namespace, body }),
      },
    );
  }

  private async ensureService(sandbox: Sandbox, ctx: BackendContext): Promise<void> {
    const desired = desiredService(sandbox);
    const actual = this.deps.services.get(keyOf(sandbox));
    if (!desired) {
      if (actual && isOwnedBy(actual, sandbox)) {
        const { namespace, name } = sandbox.metadata as { namespace: string; name: string };
        await ignoreNotFound(this.core.deleteNamespacedService({ name, namespace }));
      }
      return;
    }
    // On replace, the apiserver keeps the clusterIP the update leaves empty.
    await converge(desired, actual, ctx, {
      kind: "Service",
      create: (namespace, body) => this.core.createNamespacedService({ namespace, body }),
      replace: (name, namespace, body) =>
        this.core.replaceNamespacedService({ name, namespace, body }),
    });
  }
}

interface Mutable {
  metadata?: k8s.V1ObjectMeta;
  spec?: unknown;
}

/**
 * Create `desired` if missing; replace it when someone changed what we own
 * (labels, owner, spec fields we set), and say so in an Event. Mutable kinds only.
 */
async function converge<T extends Mutable>(
  desired: T,
  actual: T | undefined,
  ctx: BackendContext,
  api: {
    kind: string;
    create(namespace: string, body: T): Promise<unknown>;
    replace(name: string, namespace: string, body: T): Promise<unknown>;
  },
): Promise<void> {
  const { namespace, name } = desired.metadata as { namespace: string; name: string };
  if (!actual) {
    await ignoreConflict(api.create(namespace, desired));
    return;
  }
  if (
    metadataMatches(actual.metadata, desired.metadata!) &&
    containsAll(actual.spec, desired.spec)
  ) {
    return;
  }
  const resourceVersion = actual.metadata?.resourceVersion;
  await api.replace(name, namespace, {
    ...desired,
    metadata: { ...desired.metadata, resourceVersion },
  });
  ctx.record({
    type: "Normal",
    reason: `${api.kind}Restored`,
    message: `restored ${api.kind} ${name}`,
  });
}

/** Why a Pod no longer matches the spec, or undefined when it does. */
function podDrift(actual: k8s.V1Pod, desired: k8s.V1Pod): string | undefined {
  if (!metadataMatches(actual.metadata, desired.metadata!)) {
    return "the sandbox's spec changed or the pod's metadata was edited";
  }
  const images = (p: k8s.V1Pod) =>
    [...(p.spec?.initContainers ?? []), ...(p.spec?.containers ?? [])].map(
      (c) => `${c.name}=${c.image}`,
    );
  if (images(actual).join() !== images(desired).join()) return "a container image was edited";
  return undefined;
}

export function isOwnedBy(obj: { metadata?: k8s.V1ObjectMeta }, sandbox: Sandbox): boolean {
  return !!obj.metadata?.ownerReferences?.some(
    (o) => o.uid === sandbox.metadata.uid && o.controller,
  );
}

/** 404, or 409 when a uid precondition shows the object was already replaced: nothing to do. */
async function ignoreNotFound<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof k8s.ApiException && (err.code === 404 || err.code === 409)) return undefined;
    throw err;
  }
}

/** A create that finds the object already there (our cache lagged) is not an error. */
async function ignoreConflict<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof k8s.ApiException && err.code === 409) return undefined;
    throw err;
  }
}
