// The claim's shell: reads the claim, its template, what is bound to it and
// what it could take from the caches, asks decideClaim, and performs the one
// action it returns: a binding (an optimistic-concurrency write on the pooled
// Sandbox), a cold create, or the release of extras; then writes the status.
import type * as k8s from "@kubernetes/client-node";
import { API_VERSION, CLAIM_KIND } from "../api/group.js";
import { Labels } from "../api/labels.js";
import {
  ClaimSpecSchema,
  type ClaimStatus,
  type SandboxClaim,
  type SandboxWarmPool,
} from "../api/pools.js";
import type { Sandbox } from "../api/sandbox.js";
import { SandboxSpecSchema } from "../api/sandbox-spec.js";
import type { BackendName } from "../backends/backend.js";
import { apiStatus, ConflictError, fromApiError } from "../controller/errors.js";
import type { EventRecorder } from "../controller/events.js";
import type { Informer, KubeObject, ObjectSource } from "../controller/informer.js";
import { rawRequest, resourcePath } from "../controller/raw-request.js";
import type { StatusWriter } from "../controller/status-writer.js";
import type { Logger } from "../observability/logger.js";
import { SANDBOX_RESOURCE } from "../pool/controller.js";
import type { PoolMetrics } from "../pool/metrics.js";
import { claimUidOf, finishedPhase, poolOf, readyAtGeneration } from "../pool/pooled.js";
import { templateHash } from "../pool/template.js";
import { withFinalizers } from "../sandbox/finalizer-at-create.js";
import {
  BINDING_CACHE_WAIT_MS,
  type Candidate,
  claimExpiry,
  decideClaim,
  statusAfter,
  WARM_BOUND_GRACE_MS,
} from "./decide.js";
import { bindPatch, coldSandbox } from "./sandbox.js";
import type { LiveEgress } from "./warm.js";

/** Still the unclaimed pooled sandbox the decision chose: same object, same pool and template, nobody's. */
function stillClaimable(fresh: Sandbox, pool: string, cached: Sandbox): boolean {
  return (
    fresh.metadata.uid === cached.metadata.uid &&
    !fresh.metadata.deletionTimestamp &&
    poolOf(fresh) === pool &&
    !claimUidOf(fresh) &&
    fresh.metadata.labels?.[Labels.templateHash] === cached.metadata.labels?.[Labels.templateHash]
  );
}

/** What the claim took, for its Events: "ready sandbox x from pool p", "sandbox x (cold start)". */
function bindingOf(status: ClaimStatus): string {
  if (status.source === "Cold") return `sandbox ${status.sandboxName} (cold start)`;
  const what = status.source === "Warm" ? "ready sandbox" : "starting sandbox";
  return `${what} ${status.sandboxName} from pool ${status.pool}`;
}

/** How long this process keeps a sandbox it is binding (or just bound) away from its other claims. */
const RESERVATION_MS = 5_000;

export interface ClaimReconcilerDeps {
  kubeConfig: k8s.KubeConfig;
  claims: Informer<SandboxClaim & KubeObject>;
  pools: Informer<SandboxWarmPool & KubeObject>;
  templates: Informer<KubeObject & { spec?: unknown }>;
  sandboxes: ObjectSource<Sandbox & KubeObject>;
  status: StatusWriter;
  events: EventRecorder;
  metrics: PoolMetrics;
  defaultBackend: BackendName;
  liveEgress?: Partial<Record<BackendName, LiveEgress>>;
  log: Logger;
}

export class ClaimReconciler {
  /** Sandbox key -> until when it is reserved for a claim this process is binding. */
  private readonly reserved = new Map<string, number>();
  /** Claim UID -> the sandbox this process bound, until the cache shows the label. */
  private readonly inFlight = new Map<string, { sandbox: string; atMs: number }>();
  /** Claim UID -> when this process first saw it (performance.now based ms since epoch). */
  private readonly seen = new Map<string, number>();
  /** Claim UID -> the ready pooled sandbox this process bound to it, whose Bound is not written yet. */
  private readonly warmBound = new Map<string, { sandbox: string; atMs: number }>();

  constructor(private readonly deps: ClaimReconcilerDeps) {}

  /** Called from the claims informer's add handler: latency is measured from here. */
  noteSeen(claim: SandboxClaim): void {
    const uid = claim.metadata.uid;
    if (uid && !this.seen.has(uid)) this.seen.set(uid, Date.now());
  }

  async reconcile(
    key: string,
    signal: AbortSignal,
  ): Promise<{ requeueAfter?: number } | undefined> {
    const { deps } = this;
    const cached = deps.claims.get(key);
    if (!cached) return;
    // Our own last status write, if the cache has not shown it yet: a claim whose
    // sandbox turns Ready right after the binding's status write is written
    // Ready at once, not after that write's watch event.
    const claim = deps.status.newest(cached);
    const uid = claim.metadata.uid!;
    if (claim.metadata.deletionTimestamp) {
      // Garbage collection deletes the sandbox the claim owns.
      this.seen.delete(uid);
      this.inFlight.delete(uid);
      this.warmBound.delete(uid);
      return;
    }
    const parsed = ClaimSpecSchema.safeParse(claim.spec);
    if (!parsed.success) {
      deps.log.warn(
        { claim: key, err: parsed.error.message },
        "claim spec does not parse; skipped",
      );
      return;
    }
    const spec = parsed.data;
    const namespace = claim.metadata.namespace!;
    const name = claim.metadata.name!;
    const tmplObj = deps.templates.get(`${namespace}/${spec.templateRef.name}`);
    const tmpl = tmplObj && SandboxSpecSchema.safeParse(tmplObj.spec);
    const template = tmpl?.success ? tmpl.data : undefined;

    const nowMs = Date.now();
    const all = deps.sandboxes.list().filter((s) => s.metadata.namespace === namespace);
    const bound = all
      .filter((s) => claimUidOf(s) === uid)
      .map((s) => ({
        name: s.metadata.name!,
        ready: readyAtGeneration(s),
        finished: finishedPhase(s),
        pool: s.metadata.labels?.[Labels.claimedFromPool],
        deleting: !!s.metadata.deletionTimestamp,
        boundMs: new Date(s.metadata.creationTimestamp ?? nowMs).getTime(),
      }));
    const flight = this.inFlight.get(uid);
    if (flight && (bound.length || nowMs - flight.atMs > RESERVATION_MS)) this.inFlight.delete(uid);
    const warm = this.warmBound.get(uid);
    if (warm && (claim.status?.sandboxName || nowMs - warm.atMs > WARM_BOUND_GRACE_MS))
      this.warmBound.delete(uid);
    const own = deps.sandboxes.get(`${namespace}/${name}`);
    const nameTaken = !!own && claimUidOf(own) !== uid;

    const candidates: Candidate[] = [];
    if (template && !bound.length) {
      const hash = templateHash(template);
      const pools = new Set(
        deps.pools
          .list()
          .filter(
            (p) =>
              p.metadata.namespace === namespace &&
              !p.metadata.deletionTimestamp &&
              (spec.poolRef
                ? p.metadata.name === spec.poolRef.name
                : p.spec?.templateRef?.name === spec.templateRef.name),
          )
          .map((p) => p.metadata.name!),
      );
      for (const s of all) {
        const pool = poolOf(s);
        if (!pool || !pools.has(pool) || s.metadata.deletionTimestamp || finishedPhase(s)) continue;
        if (s.metadata.labels?.[Labels.templateHash] !== hash || claimUidOf(s)) continue;
        if (this.isReserved(`${namespace}/${s.metadata.name}`, nowMs)) continue;
        candidates.push({ name: s.metadata.name!, pool, ready: readyAtGeneration(s) });
      }
    }

    const decision = decideClaim({
      claim: {
        name,
        creationMs: new Date(claim.metadata.creationTimestamp ?? nowMs).getTime(),
        generation: claim.metadata.generation,
        spec,
        status: claim.status,
      },
      template,
      defaultBackend: deps.defaultBackend,
      liveEgress: deps.liveEgress,
      bound,
      bindingInFlight: this.inFlight.get(uid)?.sandbox,
      warmBinding: this.warmBound.get(uid),
      nameTaken,
      candidates,
      seenMs: this.seen.get(uid) ?? new Date(claim.metadata.creationTimestamp ?? nowMs).getTime(),
      nowMs,
      pick: (n) => Math.floor(Math.random() * n),
    });

    const involved = { apiVersion: API_VERSION, kind: CLAIM_KIND, metadata: claim.metadata };
    const action = decision.action;
    let status = decision.status;
    if (action.type === "bind") {
      const sandboxKey = `${namespace}/${action.sandbox}`;
      const pooled = deps.sandboxes.get(sandboxKey)!;
      this.reserved.set(sandboxKey, nowMs + RESERVATION_MS);
      const expiresAt = claimExpiry(
        { name, creationMs: new Date(claim.metadata.creationTimestamp ?? nowMs).getTime(), spec },
        template,
      )!;
      const patch = (resourceVersion: string) =>
        rawRequest(
          deps.kubeConfig,
          "PATCH",
          resourcePath(SANDBOX_RESOURCE, namespace, action.sandbox),
          {
            contentType: "application/merge-patch+json",
            body: bindPatch(claim, { resourceVersion }, template!, action.pool, expiresAt),
            signal,
          },
        );
      let resourceVersion = pooled.metadata.resourceVersion!;
      for (let attempt = 0; ; attempt++) {
        try {
          await patch(resourceVersion);
          break;
        } catch (err) {
          const code = apiStatus(err);
          if (code !== 409 && code !== 404) {
            this.reserved.delete(sandboxKey);
            throw fromApiError(err);
          }
          deps.metrics.bindConflicts.inc();
          // A starting sandbox's own status writes move its resourceVersion too: read it
          // again, and bind it if it is still unclaimed; otherwise another claim won it.
          const fresh =
            code === 409 && attempt < 3
              ? await this.read(namespace, action.sandbox, signal)
              : undefined;
          if (fresh && stillClaimable(fresh, action.pool, pooled)) {
            resourceVersion = fresh.metadata.resourceVersion!;
            continue;
          }
          throw new ConflictError(
            `sandbox ${action.sandbox} was taken before the binding (${code})`,
          );
        }
      }
      this.inFlight.set(uid, { sandbox: action.sandbox, atMs: nowMs });
      deps.metrics.claims.inc({ source: action.source });
      if (action.source === "Warm") {
        // A ready sandbox takes the claim's spec within a reconcile or so: the
        // claim's Bound goes out with its Ready, in one status write, and one
        // Event says both (decide.ts, WARM_BOUND_GRACE_MS).
        this.warmBound.set(uid, { sandbox: action.sandbox, atMs: Date.now() });
        this.sweep(nowMs);
        return { requeueAfter: BINDING_CACHE_WAIT_MS };
      }
      status = statusAfter(decision, action, action.sandbox, claim.metadata.generation, Date.now());
      deps.events.record(
        involved,
        "Normal",
        "Bound",
        `took starting sandbox ${action.sandbox} from pool ${action.pool}`,
      );
    } else if (action.type === "cold") {
      const expiresAt = claimExpiry(
        { name, creationMs: new Date(claim.metadata.creationTimestamp ?? nowMs).getTime(), spec },
        template,
      )!;
      try {
        await rawRequest(deps.kubeConfig, "POST", resourcePath(SANDBOX_RESOURCE, namespace), {
          body: coldSandbox(
            claim,
            template!,
            expiresAt,
            withFinalizers(template!.backend ?? deps.defaultBackend),
          ),
          signal,
        });
      } catch (err) {
        // Ours from a previous attempt (the cache will show it), or someone else's (NameTaken next time).
        if (apiStatus(err) === 409) throw new ConflictError(`sandbox ${name} exists`);
        throw fromApiError(err);
      }
      this.inFlight.set(uid, { sandbox: name, atMs: nowMs });
      status = statusAfter(decision, action, name, claim.metadata.generation, Date.now());
      deps.metrics.claims.inc({ source: "Cold" });
      deps.events.record(
        involved,
        "Normal",
        "ColdStart",
        `created sandbox ${name}: ${action.reason}`,
      );
    } else if (action.type === "release") {
      for (const extra of action.names) {
        await rawRequest(
          deps.kubeConfig,
          "DELETE",
          resourcePath(SANDBOX_RESOURCE, namespace, extra),
          {
            body: { propagationPolicy: "Background" },
            signal,
          },
        ).catch((err) => {
          if (apiStatus(err) !== 404) throw fromApiError(err);
        });
        deps.events.record(
          involved,
          "Warning",
          "Released",
          `deleted extra sandbox ${extra} bound to the claim`,
        );
      }
    }
    if (!decision.deferStatus || action.type !== "none")
      await deps.status.write(claim, status, { signal });
    // After the write: the Event's create does not compete with the claim's
    // Ready on its way to the apiserver, and a write that failed (retried
    // from the cache) is not counted or announced twice. A binding and its
    // Ready written together are announced together.
    const took = decision.becameBound ? `took ${bindingOf(status)}; ` : "";
    if (decision.becameReadyMs !== undefined) {
      deps.metrics.claimReadySeconds.observe(
        { source: status.source ?? "Cold" },
        decision.becameReadyMs / 1000,
      );
      deps.events.record(
        involved,
        "Normal",
        "Ready",
        `${took}sandbox ${status.sandboxName} ready with the claim's policy after ${decision.becameReadyMs} ms (${status.source})`,
      );
    } else if (decision.becameBound) {
      deps.events.record(involved, "Normal", "Bound", `took ${bindingOf(status)}`);
    }
    this.sweep(nowMs);
    return decision.requeueAfterMs !== undefined
      ? { requeueAfter: Math.max(10, decision.requeueAfterMs) }
      : undefined;
  }

  private async read(
    namespace: string,
    name: string,
    signal: AbortSignal,
  ): Promise<Sandbox | undefined> {
    try {
      return await rawRequest<Sandbox>(
        this.deps.kubeConfig,
        "GET",
        resourcePath(SANDBOX_RESOURCE, namespace, name),
        { signal },
      );
    } catch (err) {
      if (apiStatus(err) === 404) return undefined;
      throw fromApiError(err);
    }
  }

  private isReserved(key: string, nowMs: number): boolean {
    const until = this.reserved.get(key);
    if (until === undefined) return false;
    if (until > nowMs) return true;
    this.reserved.delete(key);
    return false;
  }

  private sweep(nowMs: number): void {
    if (this.reserved.size > 1000)
      for (const [k, until] of this.reserved) if (until <= nowMs) this.reserved.delete(k);
    if (this.warmBound.size > 1000)
      for (const [k, w] of this.warmBound)
        if (nowMs - w.atMs > WARM_BOUND_GRACE_MS) this.warmBound.delete(k);
    if (this.seen.size > 100_000) this.seen.clear();
  }
}
