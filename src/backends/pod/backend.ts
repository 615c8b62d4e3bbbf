// The pod backend: a sandbox is a Pod, a NetworkPolicy and (with ports) a Service.
// Reads come from informer caches, so an idle sandbox costs no API calls; writes
// happen only when an object is missing or differs from what the spec says.
//
// The caches hold only objects labelled as ours, so an object whose labels were
// removed by hand drops out of view. It is still found: by its deterministic
// name (a create meets 409 AlreadyExists and the object is read by name) and
// claimed by its owner reference (this Sandbox's UID), then taken back, labels
// and spec. Removal reads by name too, once, so a relabelled Pod cannot outlive
// its sandbox's lifetime.
import type * as k8s from "@kubernetes/client-node";
import { ConditionReason } from "../../api/conditions.js";
import { API_VERSION, GROUP, SANDBOX_KIND, SNAPSHOT_PLURAL, VERSION } from "../../api/group.js";
import { Labels } from "../../api/labels.js";
import type { Sandbox } from "../../api/sandbox.js";
import type { SandboxSnapshot } from "../../api/snapshot.js";
import { ConflictError, fromApiError, PermanentError } from "../../controller/errors.js";
import { KindClient } from "../../controller/kind-client.js";
import { OwnWrites } from "../../controller/own-writes.js";
import { keyOf } from "../../kube/object-key.js";
import {
  POLICY_APPLIED_ANNOTATION,
  POLICY_CA_ANNOTATION,
  policyHash,
} from "../../policy-server/contract.js";
import { deriveAgentToken, newAgentToken } from "../agent.js";
import type { BackendContext, Observation, SandboxBackend, SuspendResult } from "../backend.js";
import { ignoreGone, ignoreNotFound, isConflictError } from "../errors.js";
import { agentSecretName, desiredAgentSecret, type GatewayAccess } from "./agent.js";
import { DesiredObjects } from "./desired.js";
import { type EgressOptions, POLICY_ANNOTATION } from "./egress.js";
import { labelsMatch, metadataMatches, ownLabels } from "./metadata.js";
import { egressSidecarRestartEvent, egressSidecarRestarts, observePod } from "./observe.js";
import { POD_STOP_GRACE_SECONDS } from "./pod.js";
import { annotationHolds, POLICY_FILE_DEFER_MS, policyFileAction } from "./policy-file.js";
import { NameTakenError, refusedObservation } from "./refusal.js";
import { replaceEvent } from "./replace-reason.js";
import { serviceEndpoints } from "./service.js";
import { containsAll } from "./subset.js";
import {
  claimReadiness,
  unsupportedMount,
  workspaceClaimName,
  workspaceStatus,
} from "./workspace.js";
import { type SnapshotSource, WorkspaceClaims } from "./workspace-claims.js";

/** Read access to what an informer has cached, keyed "namespace/name". */
export interface ObjectCache<T> {
  get(key: string): T | undefined;
}

export interface PodBackendDeps {
  kubeConfig: k8s.KubeConfig;
  egress: EgressOptions;
  /** The gateway reaches agents at the pod IP (./agent.ts); absent: loopback only. */
  gateway?: GatewayAccess;
  pods: ObjectCache<k8s.V1Pod>;
  networkPolicies: ObjectCache<k8s.V1NetworkPolicy>;
  services: ObjectCache<k8s.V1Service>;
  /** Workspace PVCs labelled as ours; without it, a workspace is read by name until its Pod exists. */
  claims?: ObjectCache<k8s.V1PersistentVolumeClaim>;
  /**
   * Acknowledgements this replica's policy endpoint received (Pod UID ->
   * policy digest): the same fact as the Pod's annotation, known before that
   * write and its watch event (src/policy-server/applied.ts).
   */
  applied?: { get(podUid: string): string | undefined };
  /** Reconcile a sandbox again (a policy file left to the channel, when its wait is over). */
  enqueue?: (key: string) => void;
}

const NO_CACHE: ObjectCache<never> = { get: () => undefined };

interface KubeObject {
  metadata?: k8s.V1ObjectMeta;
}

/** How the backend reaches one kind: its cache, and reads and deletes by name. */
interface Kind<T extends KubeObject> {
  kind: string;
  cache: ObjectCache<T>;
  read(name: string, namespace: string, signal?: AbortSignal): Promise<T>;
  delete(
    name: string,
    namespace: string,
    uid: string | undefined,
    signal?: AbortSignal,
  ): Promise<unknown>;
  /** Write `obj` back with `labels` added (the object as read: a compare-and-swap). */
  relabel(obj: T, labels: Record<string, string>, signal?: AbortSignal): Promise<unknown>;
}

/**
 * Sandboxes whose objects were confirmed gone by name (not just by the cache).
 * Nothing recreates them after a removal, so once is enough; the bound keeps a
 * long-running controller's memory flat (an evicted entry costs three reads).
 */
const CONFIRMED_GONE_MAX = 100_000;
/** Pods whose sidecar restart count is remembered (the oldest are forgotten first). */
const MAX_REMEMBERED_PODS = 20_000;

/** A policy file left to the channel's acknowledgement (./policy-file.ts), by sandbox key. */
interface Deferral {
  podUid: string;
  hash: string;
  sinceMs: number;
  timer: NodeJS.Timeout;
}

export class PodBackend implements SandboxBackend {
  readonly name = "pod" as const;
  /** Owner references let Kubernetes garbage collection remove everything. */
  readonly needsFinalizer = false;
  private readonly api: {
    pods: KindClient<k8s.V1Pod>;
    networkPolicies: KindClient<k8s.V1NetworkPolicy>;
    services: KindClient<k8s.V1Service>;
    secrets: KindClient<k8s.V1Secret>;
    snapshots: KindClient<SandboxSnapshot>;
  };
  private readonly pods: Kind<k8s.V1Pod>;
  private readonly networkPolicies: Kind<k8s.V1NetworkPolicy>;
  private readonly services: Kind<k8s.V1Service>;
  private readonly confirmedGone = new Set<string>();
  /** Egress sidecar restart count last seen, by Pod UID: a higher one is an Event. */
  private readonly sidecarRestarts = new Map<string, number>();
  private readonly deferrals = new Map<string, Deferral>();
  private readonly desired: DesiredObjects;
  private readonly workspaces: WorkspaceClaims;
  private readonly claims: KindClient<k8s.V1PersistentVolumeClaim>;
  /**
   * The versions this backend wrote of each watched kind: their watch events
   * are echoes the Sandbox controller need not reconcile for (own-writes.ts).
   */
  readonly ownWrites = {
    pods: new OwnWrites(),
    networkPolicies: new OwnWrites(),
    services: new OwnWrites(),
  };

  constructor(private readonly deps: PodBackendDeps) {
    this.desired = new DesiredObjects(deps.egress, undefined, deps.gateway);
    const kc = deps.kubeConfig;
    const api = {
      pods: new KindClient<k8s.V1Pod>(
        kc,
        { group: "", version: "v1", plural: "pods" },
        this.ownWrites.pods,
      ),
      networkPolicies: new KindClient<k8s.V1NetworkPolicy>(
        kc,
        { group: "networking.k8s.io", version: "v1", plural: "networkpolicies" },
        this.ownWrites.networkPolicies,
      ),
      services: new KindClient<k8s.V1Service>(
        kc,
        { group: "", version: "v1", plural: "services" },
        this.ownWrites.services,
      ),
      secrets: new KindClient<k8s.V1Secret>(kc, { group: "", version: "v1", plural: "secrets" }),
      snapshots: new KindClient<SandboxSnapshot>(kc, {
        group: GROUP,
        version: VERSION,
        plural: SNAPSHOT_PLURAL,
      }),
    };
    this.api = api;
    this.claims = new KindClient<k8s.V1PersistentVolumeClaim>(kc, {
      group: "",
      version: "v1",
      plural: "persistentvolumeclaims",
    });
    this.workspaces = new WorkspaceClaims({
      api: this.claims,
      cache: deps.claims ?? NO_CACHE,
      snapshotSource: (namespace, name, signal) => this.snapshotSource(namespace, name, signal),
    });
    this.pods = {
      kind: "Pod",
      cache: deps.pods,
      read: (name, namespace, signal) => api.pods.read(name, namespace, signal),
      delete: (name, namespace, uid, signal) =>
        api.pods.delete(
          name,
          namespace,
          { uid, gracePeriodSeconds: POD_STOP_GRACE_SECONDS },
          signal,
        ),
      relabel: (pod, labels, signal) =>
        api.pods.mergePatch(
          pod.metadata!.name!,
          pod.metadata!.namespace!,
          { metadata: { uid: pod.metadata?.uid, labels } },
          signal,
        ),
    };
    this.networkPolicies = {
      kind: "NetworkPolicy",
      cache: deps.networkPolicies,
      read: (name, namespace, signal) => api.networkPolicies.read(name, namespace, signal),
      delete: (name, namespace, uid, signal) =>
        api.networkPolicies.delete(name, namespace, { uid }, signal),
      relabel: (np, labels, signal) =>
        api.networkPolicies.replace(
          np.metadata!.name!,
          np.metadata!.namespace!,
          withLabels(np, labels),
          signal,
        ),
    };
    this.services = {
      kind: "Service",
      cache: deps.services,
      read: (name, namespace, signal) => api.services.read(name, namespace, signal),
      delete: (name, namespace, uid, signal) =>
        api.services.delete(name, namespace, { uid }, signal),
      relabel: (svc, labels, signal) =>
        api.services.replace(
          svc.metadata!.name!,
          svc.metadata!.namespace!,
          withLabels(svc, labels),
          signal,
        ),
    };
  }

  async ensure(sandbox: Sandbox, ctx: BackendContext): Promise<Observation> {
    const hostPath = unsupportedMount(sandbox.spec.mounts);
    if (hostPath) {
      throw new PermanentError(
        ConditionReason.Unsupported,
        `spec.mounts: ${hostPath.mountPath} is a hostPath mount, which only the docker backend makes; the pod backend never mounts a path of the node`,
      );
    }
    try {
      // The fence goes up before the workload exists.
      await this.ensureNetworkPolicy(sandbox, ctx);
      await this.ensureService(sandbox, ctx);
      const cached = this.deps.pods.get(keyOf(sandbox));
      // The workspace claim before the Pod that mounts it: a Pod is never made
      // for a workspace that cannot come (missing, someone else's, a snapshot not ready).
      const workspace = await this.workspaces.ensure(
        sandbox,
        ctx,
        !!cached && isOwnedBy(cached, sandbox),
      );
      if (!workspace.use) {
        const { reason, message, stalled } = workspace;
        return {
          phase: "Pending",
          ready: false,
          reason,
          message,
          stalled,
          // Nothing watched announces the fix (an unlabelled PVC, a snapshot): look again.
          retry: true,
          endpoints: serviceEndpoints(sandbox),
          workspace: workspaceStatus(sandbox),
          workspaceReady: { ready: false, reason, message },
        };
      }
      // Before a Pod is created (which mounts it); a Pod in the cache had its Secret.
      if (!cached) await this.ensureAgentSecret(sandbox, ctx);
      const pod = await this.ensurePod(sandbox, ctx);
      if (pod) this.noteSidecarRestarts(pod, ctx);
      return this.withWorkspace(sandbox, this.observation(sandbox, pod), workspace.claim);
    } catch (err) {
      // A refused create (quota, LimitRange, a missing RuntimeClass, a name
      // someone else holds) is what is observed: a condition with the apiserver's
      // words, retried with backoff. A 422 is the spec's doing: PermanentError.
      const refused = refusedObservation(sandbox, err);
      if (refused) return { ...refused, endpoints: serviceEndpoints(sandbox) };
      throw fromApiError(err);
    }
  }

  async observe(sandbox: Sandbox): Promise<Observation | undefined> {
    const pod = this.deps.pods.get(keyOf(sandbox));
    // A Pod on its way out is no workload: a finished sandbox keeps its record.
    if (!pod || !isOwnedBy(pod, sandbox) || pod.metadata?.deletionTimestamp) return undefined;
    return this.withWorkspace(sandbox, this.observation(sandbox, pod));
  }

  /** The workspace's record and readiness beside what the Pod says. */
  private withWorkspace(
    sandbox: Sandbox,
    observation: Observation,
    claim?: k8s.V1PersistentVolumeClaim,
  ): Observation {
    if (!sandbox.spec.workspace) return observation;
    // A Pod past Pending had its volumes mounted by the kubelet.
    const mounted = observation.phase !== "Pending";
    return {
      ...observation,
      workspace: workspaceStatus(sandbox),
      workspaceReady: claimReadiness(
        workspaceClaimName(sandbox),
        claim ?? this.workspaces.cached(sandbox),
        mounted,
      ),
    };
  }

  /** What a SandboxSnapshot offers a new workspace here: a ready VolumeSnapshot, or why not yet. */
  private async snapshotSource(
    namespace: string,
    name: string,
    signal?: AbortSignal,
  ): Promise<SnapshotSource> {
    const snap = await ignoreNotFound(this.api.snapshots.read(name, namespace, signal));
    const status = snap?.status;
    if (!snap) {
      return { ready: false, stalled: true, message: `SandboxSnapshot ${name} does not exist` };
    }
    if (status?.phase === "Failed") {
      return {
        ready: false,
        stalled: true,
        message: `SandboxSnapshot ${name} failed: ${status.message ?? status.reason ?? "no reason given"}`,
      };
    }
    if (status?.backend && status.backend !== "pod") {
      return {
        ready: false,
        stalled: true,
        message: `SandboxSnapshot ${name} was taken on the ${status.backend} backend; a pod-backend workspace starts only from a VolumeSnapshot`,
      };
    }
    if (status?.phase !== "Ready" || !status.handle) {
      return { ready: false, stalled: false, message: `SandboxSnapshot ${name} is not ready yet` };
    }
    // The source workspace's class, read once before the new PVC is made: the
    // driver holding the snapshot is the one that can restore it.
    const source = status.sourceWorkspace
      ? await ignoreNotFound(this.claims.read(status.sourceWorkspace, namespace, signal))
      : undefined;
    const storageClassName = source?.spec?.storageClassName;
    return {
      ready: true,
      volumeSnapshot: status.handle,
      ...(storageClassName ? { storageClassName } : {}),
      ...(status.sizeBytes !== undefined ? { sizeBytes: status.sizeBytes } : {}),
    };
  }

  /**
   * Suspend: delete the Pod (its compute), keep the NetworkPolicy, the Service
   * (its ClusterIP stays the sandbox's address, with no endpoints meanwhile)
   * and the agent's Secret (the same credential after a resume). The Pod is
   * looked up by name as well as in the cache, so one stripped of its labels
   * does not keep running; released once it is gone, not merely terminating.
   */
  async suspend(sandbox: Sandbox, ctx: BackendContext): Promise<SuspendResult> {
    const pod = await this.findOwned(this.pods, sandbox, true, ctx.signal);
    // The workspace PVC is not touched: it is what a resume mounts again.
    if (!pod) return { released: true, workspace: workspaceStatus(sandbox) };
    if (!pod.metadata?.deletionTimestamp) {
      await this.deleteOwned(this.pods, pod, sandbox, ctx.signal);
      ctx.record({
        type: "Normal",
        reason: "PodDeleted",
        message: `deleted pod ${pod.metadata?.name} to suspend the sandbox`,
      });
    }
    return { released: false, workspace: workspaceStatus(sandbox) };
  }

  async remove(sandbox: Sandbox, ctx: BackendContext): Promise<boolean> {
    this.dropDeferral(keyOf(sandbox));
    const { name } = sandbox.metadata as { name: string };
    const uid = sandbox.metadata.uid ?? "";
    // Until confirmed by name, an object missing from the cache may only have lost its labels.
    const byName = !this.confirmedGone.has(uid);
    const find = <T extends KubeObject>(kind: Kind<T>) =>
      this.findOwned(kind, sandbox, byName, ctx.signal);
    const [pod, np, svc] = [
      await find(this.pods),
      await find(this.networkPolicies),
      await find(this.services),
    ];
    const opts = ctx.signal;
    if (pod && !pod.metadata?.deletionTimestamp) {
      await this.deleteOwned(this.pods, pod, sandbox, opts);
      ctx.record({ type: "Normal", reason: "PodDeleted", message: `deleted pod ${name}` });
    }
    if (svc) await this.deleteOwned(this.services, svc, sandbox, opts);
    // The NetworkPolicy goes last: the workload stays fenced while it shuts down.
    if (np && !pod) await this.deleteOwned(this.networkPolicies, np, sandbox, opts);
    const gone = !pod && !np && !svc;
    if (gone && byName) {
      if (this.confirmedGone.size >= CONFIRMED_GONE_MAX) this.confirmedGone.clear();
      this.confirmedGone.add(uid);
    }
    return gone;
  }

  /**
   * Delete an object of this sandbox, labelled as ours again first if it lost
   * its labels: the chart's admission policy lets the operator delete only what
   * is labelled as its own. The UID precondition spares a newer namesake.
   */
  private async deleteOwned<T extends KubeObject>(
    kind: Kind<T>,
    obj: T,
    sandbox: Sandbox,
    opts: AbortSignal | undefined,
  ): Promise<void> {
    const { name, namespace, uid } = obj.metadata ?? {};
    const labels = ownLabels(sandbox);
    if (!labelsMatch(obj.metadata, { labels })) {
      await ignoreGone(kind.relabel(obj, labels, opts));
    }
    await ignoreGone(kind.delete(name!, namespace!, uid, opts));
  }

  /** This sandbox's object of a kind: from the cache, or (with `byName`) read by name when the cache has none. */
  private async findOwned<T extends KubeObject>(
    kind: Kind<T>,
    sandbox: Sandbox,
    byName: boolean,
    signal: AbortSignal | undefined,
  ): Promise<T | undefined> {
    const { namespace, name } = sandbox.metadata as { namespace: string; name: string };
    const cached = kind.cache.get(keyOf(sandbox));
    const found =
      cached ?? (byName ? await ignoreNotFound(kind.read(name, namespace, signal)) : undefined);
    return found && isOwnedBy(found, sandbox) ? found : undefined;
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
    const observed = observePod(pod);
    return { ...observed, egressReady: this.channelReadiness(sandbox, pod, observed), endpoints };
  }

  /**
   * With the policy channel, egress is ready for this generation only once
   * the sidecar acknowledged the Sandbox's current policy (recorded on the
   * Pod by the endpoint): a claim's Ready then means its policy is in force.
   */
  private channelReadiness(
    sandbox: Sandbox,
    pod: k8s.V1Pod,
    observed: Observation,
  ): Observation["egressReady"] {
    const egress = observed.egressReady;
    if (!egress?.ready || pod.metadata?.annotations?.[POLICY_CA_ANNOTATION] === undefined)
      return egress;
    const current = policyHash(sandbox.spec.network.egress);
    const onPod = pod.metadata?.annotations?.[POLICY_APPLIED_ANNOTATION];
    const uid = pod.metadata?.uid;
    const here = uid ? this.deps.applied?.get(uid) : undefined;
    if (onPod === current || here === current) {
      return {
        ...egress,
        message: "egress is enforced by the firewall and the sidecar, on the current policy",
      };
    }
    return {
      ready: false,
      reason: ConditionReason.EgressPending,
      message: `waiting for the egress sidecar to apply the policy of generation ${sandbox.metadata.generation ?? 0}; the previous one stays in force meanwhile`,
    };
  }

  /**
   * Create `desired`, or, when an object of its name exists that the cache does
   * not show (its labels were removed, or the cache lags), read it by name.
   * One that vanished in between may never show in the cache (it was not
   * labelled): a ConflictError has the reconcile retried at once.
   */
  private async createOrRead<T extends KubeObject>(
    kind: Kind<T>,
    desired: T,
    create: (namespace: string, body: T, signal?: AbortSignal) => Promise<T>,
    signal: AbortSignal | undefined,
  ): Promise<{ created?: T; existing?: T }> {
    const { namespace, name } = desired.metadata as { namespace: string; name: string };
    try {
      return { created: await create(namespace, desired, signal) };
    } catch (err) {
      if (!isConflictError(err)) throw err;
    }
    const existing = await ignoreNotFound(kind.read(name, namespace, signal));
    if (!existing) throw new ConflictError(`${kind.kind} ${name} went away while being created`);
    return { existing };
  }

  /** The kubelet restarts a dead sidecar in place; say so once per restart. */
  private noteSidecarRestarts(pod: k8s.V1Pod, ctx: BackendContext): void {
    const uid = pod.metadata?.uid;
    if (!uid) return;
    const event = egressSidecarRestartEvent(pod, this.sidecarRestarts.get(uid));
    if (event) ctx.record(event);
    this.sidecarRestarts.delete(uid); // re-inserted last: the map is in least-recently-seen order
    this.sidecarRestarts.set(uid, egressSidecarRestarts(pod));
    if (this.sidecarRestarts.size > MAX_REMEMBERED_PODS) {
      const oldest = this.sidecarRestarts.keys().next().value;
      if (oldest !== undefined) this.sidecarRestarts.delete(oldest);
    }
  }

  private async ensurePod(sandbox: Sandbox, ctx: BackendContext): Promise<k8s.V1Pod | undefined> {
    const desired = this.desired.of(sandbox).pod;
    let actual = this.deps.pods.get(keyOf(sandbox));
    const { namespace, name } = desired.metadata as { namespace: string; name: string };
    const opts = ctx.signal;

    if (!actual) {
      const { created, existing } = await this.createOrRead(
        this.pods,
        desired,
        (ns, body, signal) => this.api.pods.create(ns, body, signal),
        ctx.signal,
      );
      if (created) return created;
      actual = existing!;
    }
    if (actual.metadata?.deletionTimestamp) return actual;
    if (!isOwnedBy(actual, sandbox)) {
      await this.deleteStale(this.pods, actual, sandbox, ctx);
      return undefined;
    }
    const drift = podDrift(actual, desired);
    if (drift) {
      // Pods are immutable where it matters: recreate, and say why.
      await this.deleteOwned(this.pods, actual, sandbox, opts);
      ctx.record({
        type: "Normal",
        reason: "PodRecreated",
        message: `recreating pod ${name}: ${drift}`,
      });
      return undefined;
    }
    const relabel = !labelsMatch(actual.metadata, desired.metadata!);
    // The policy file and the channel's CA bundle: the kubelet rewrites both
    // files in place (with the channel, the sidecar follows the endpoint
    // instead; the file stays the start-up policy of a restarted sidecar).
    const changed: Record<string, string> = {};
    const want = desired.metadata?.annotations ?? {};
    const have = actual.metadata?.annotations ?? {};
    const caPem = want[POLICY_CA_ANNOTATION];
    if (caPem !== undefined && have[POLICY_CA_ANNOTATION] !== caPem)
      changed[POLICY_CA_ANNOTATION] = caPem;
    const policyDoc = want[POLICY_ANNOTATION];
    if (
      policyDoc !== undefined &&
      this.policyFile(sandbox, actual, caPem !== undefined) === "write"
    )
      changed[POLICY_ANNOTATION] = policyDoc;
    const newPolicy = POLICY_ANNOTATION in changed;
    if (relabel || Object.keys(changed).length) {
      // In place: labels are mutable, and the kubelet rewrites the sidecar's
      // policy file from the annotation; the workload keeps running. The UID
      // pins the Pod that was judged (a UID that no longer matches is refused);
      // not the resourceVersion, which every status update of the kubelet moves.
      await this.api.pods.mergePatch(
        name,
        namespace,
        {
          metadata: {
            uid: actual.metadata?.uid,
            labels: relabel ? desired.metadata?.labels : undefined,
            annotations: Object.keys(changed).length ? changed : undefined,
          },
        },
        opts,
      );
      if (relabel) {
        ctx.record({
          type: "Normal",
          reason: "PodRestored",
          message: `restored the labels of pod ${name}`,
        });
      }
      if (newPolicy) {
        ctx.record({
          type: "Normal",
          reason: "EgressPolicyUpdated",
          message: "delivered the new egress policy to the running sidecar",
        });
      }
    }
    return actual;
  }

  /**
   * Whether this reconcile writes the Pod's policy annotation (./policy-file.ts):
   * with the channel, the endpoint writes it with the sidecar's
   * acknowledgement, and the reconcile stays off the Pod for up to
   * POLICY_FILE_DEFER_MS (then looks again, and writes it if still stale).
   */
  private policyFile(sandbox: Sandbox, pod: k8s.V1Pod, channel: boolean) {
    const key = keyOf(sandbox);
    const policy = sandbox.spec.network.egress;
    const hash = policyHash(policy);
    const uid = pod.metadata?.uid ?? "";
    const annotations = pod.metadata?.annotations ?? {};
    const pending = this.deferrals.get(key);
    const same = pending && pending.podUid === uid && pending.hash === hash;
    const nowMs = Date.now();
    const action = policyFileAction({
      current: annotationHolds(annotations[POLICY_ANNOTATION], policy),
      channel,
      sidecarReady: !!observePod(pod).egressReady?.ready,
      ackOnPod: annotations[POLICY_APPLIED_ANNOTATION] === hash,
      deferredForMs: same ? nowMs - pending.sinceMs : undefined,
    });
    if (action === "defer") {
      if (!same) {
        if (pending) clearTimeout(pending.timer);
        const timer = setTimeout(() => this.deps.enqueue?.(key), POLICY_FILE_DEFER_MS + 10);
        timer.unref?.();
        this.deferrals.set(key, { podUid: uid, hash, sinceMs: nowMs, timer });
        if (this.deferrals.size > MAX_REMEMBERED_PODS) {
          const oldest = this.deferrals.keys().next();
          if (!oldest.done) {
            clearTimeout(this.deferrals.get(oldest.value)!.timer);
            this.deferrals.delete(oldest.value);
          }
        }
      }
      return action;
    }
    this.dropDeferral(key);
    return action;
  }

  private dropDeferral(key: string): void {
    const pending = this.deferrals.get(key);
    if (!pending) return;
    clearTimeout(pending.timer);
    this.deferrals.delete(key);
  }

  /**
   * An object of our name owned by an earlier Sandbox of that name (not yet
   * collected), or labelled for this one but stripped of its owner: delete it
   * so ours can be created. One that no Sandbox claims is someone else's:
   * never deleted, reported instead.
   */
  private async deleteStale<T extends KubeObject>(
    kind: Kind<T>,
    actual: T,
    sandbox: Sandbox,
    ctx: BackendContext,
  ): Promise<void> {
    const { name, namespace, uid } = actual.metadata ?? {};
    if (!ownedByASandbox(actual) && !labelledFor(actual, sandbox)) {
      throw new NameTakenError(kind.kind, name ?? "");
    }
    await ignoreGone(kind.delete(name!, namespace!, uid, ctx.signal));
    ctx.record({
      type: "Normal",
      reason: `Stale${kind.kind}Deleted`,
      message: `deleted ${kind.kind} ${name} left by an earlier sandbox of the same name`,
    });
  }

  /** Random, or derived from the key shared with the gateway (which then needs no Secret). */
  private agentToken(sandbox: Sandbox): string {
    const key = this.deps.gateway?.agentKey;
    return key ? deriveAgentToken(key, sandbox.metadata.uid!) : newAgentToken();
  }

  /**
   * The agent's credential: created once per Sandbox and kept (immutable) for
   * its life, so a recreated Pod keeps the same one. One left by an earlier
   * Sandbox of the same name is replaced: a credential is never inherited.
   */
  private async ensureAgentSecret(sandbox: Sandbox, ctx: BackendContext): Promise<void> {
    const { namespace, name } = sandbox.metadata as { namespace: string; name: string };
    const secretName = agentSecretName(name);
    const create = () =>
      this.api.secrets.create(
        namespace,
        desiredAgentSecret(sandbox, this.agentToken(sandbox)),
        ctx.signal,
      );
    try {
      await create();
      return;
    } catch (err) {
      if (!isConflictError(err)) throw err;
    }
    const existing = await ignoreNotFound(this.api.secrets.read(secretName, namespace, ctx.signal));
    if (!existing) throw new ConflictError(`Secret ${secretName} went away while being created`);
    if (isOwnedBy(existing, sandbox)) return;
    if (!ownedByASandbox(existing) && !labelledFor(existing, sandbox)) {
      throw new NameTakenError("Secret", secretName);
    }
    await ignoreGone(
      this.api.secrets.delete(secretName, namespace, { uid: existing.metadata?.uid }, ctx.signal),
    );
    ctx.record({
      type: "Normal",
      reason: "StaleSecretDeleted",
      message: `deleted Secret ${secretName} left by an earlier sandbox of the same name`,
    });
    await create();
  }

  private async ensureNetworkPolicy(sandbox: Sandbox, ctx: BackendContext): Promise<void> {
    await this.converge(
      sandbox,
      this.desired.of(sandbox).networkPolicy,
      this.networkPolicies,
      ctx,
      this.api.networkPolicies,
    );
  }

  private async ensureService(sandbox: Sandbox, ctx: BackendContext): Promise<void> {
    const desired = this.desired.of(sandbox).service;
    if (!desired) {
      const actual = this.deps.services.get(keyOf(sandbox));
      if (actual && isOwnedBy(actual, sandbox)) {
        const { namespace, name } = sandbox.metadata as { namespace: string; name: string };
        await ignoreGone(this.services.delete(name, namespace, actual.metadata?.uid, ctx.signal));
      }
      return;
    }
    // On replace, the apiserver keeps the clusterIP the update leaves empty.
    await this.converge(sandbox, desired, this.services, ctx, this.api.services);
  }

  /**
   * Create `desired` if missing; replace it when it differs from what we own
   * (labels, owner, spec fields we set): the sandbox's spec changed, or someone
   * edited it. An Event says which (replace-reason.ts). Mutable kinds only.
   */
  private async converge<T extends KubeObject & { spec?: unknown }>(
    sandbox: Sandbox,
    desired: T,
    kind: Kind<T>,
    ctx: BackendContext,
    api: {
      create(namespace: string, body: T, signal?: AbortSignal): Promise<T>;
      replace(name: string, namespace: string, body: T, signal?: AbortSignal): Promise<T>;
    },
  ): Promise<void> {
    const { namespace, name } = desired.metadata as { namespace: string; name: string };
    let actual = kind.cache.get(keyOf(sandbox));
    if (!actual) {
      const { created, existing } = await this.createOrRead(
        kind,
        desired,
        (ns, body, signal) => api.create(ns, body, signal),
        ctx.signal,
      );
      if (created) return;
      actual = existing!;
    }
    // Ours (by owner, or by label when the owner was stripped), or left by an
    // earlier Sandbox of the same name: taken over by the replace below.
    // Anyone else's is not ours to overwrite.
    if (!isOwnedBy(actual, sandbox) && !ownedByASandbox(actual) && !labelledFor(actual, sandbox)) {
      throw new NameTakenError(kind.kind, name);
    }
    if (
      metadataMatches(actual.metadata, desired.metadata!) &&
      containsAll(actual.spec, desired.spec)
    ) {
      return;
    }
    const resourceVersion = actual.metadata?.resourceVersion;
    await api.replace(
      name,
      namespace,
      { ...desired, metadata: { ...desired.metadata, resourceVersion } },
      ctx.signal,
    );
    ctx.record({ type: "Normal", ...replaceEvent(kind.kind, name, sandbox) });
  }
}

/** Why a Pod no longer matches the spec (so must be recreated), or undefined when it does. */
function podDrift(actual: k8s.V1Pod, desired: k8s.V1Pod): string | undefined {
  // Labels are left out: they are restored in place.
  if (!metadataMatches(actual.metadata, desired.metadata!, { labels: false })) {
    return "the sandbox's spec changed or the pod's metadata was edited";
  }
  const images = (p: k8s.V1Pod) =>
    [...(p.spec?.initContainers ?? []), ...(p.spec?.containers ?? [])].map(
      (c) => `${c.name}=${c.image}`,
    );
  if (images(actual).join() !== images(desired).join()) return "a container image was edited";
  return undefined;
}

export function isOwnedBy(obj: KubeObject, sandbox: Sandbox): boolean {
  return !!obj.metadata?.ownerReferences?.some(
    (o) => o.uid === sandbox.metadata.uid && o.controller,
  );
}

/** Controlled by some Sandbox (this one or an earlier one of the same name). */
function ownedByASandbox(obj: KubeObject): boolean {
  return !!obj.metadata?.ownerReferences?.some(
    (o) => o.controller && o.kind === SANDBOX_KIND && o.apiVersion === API_VERSION,
  );
}

/** Labelled for this sandbox (its UID), whatever its owner references say now. */
function labelledFor(obj: KubeObject, sandbox: Sandbox): boolean {
  return (
    !!sandbox.metadata.uid && obj.metadata?.labels?.[Labels.sandboxUid] === sandbox.metadata.uid
  );
}

function withLabels<T extends KubeObject>(obj: T, labels: Record<string, string>): T {
  return { ...obj, metadata: { ...obj.metadata, labels: { ...obj.metadata?.labels, ...labels } } };
}
