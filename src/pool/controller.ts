// The warm pool's shell: reads the pool, its template and its unclaimed
// sandboxes from the caches, asks decidePool what to do, creates and deletes
// within the refill rate limit, and writes the status.
import { randomBytes } from "node:crypto";
import type * as k8s from "@kubernetes/client-node";
import { API_VERSION, POOL_KIND, SANDBOX_KIND } from "../api/group.js";
import { Labels, MANAGED_BY } from "../api/labels.js";
import { PoolConditionType, PoolReason } from "../api/pool-conditions.js";
import { PoolSpecSchema, type PoolStatus, type SandboxWarmPool } from "../api/pools.js";
import type { Sandbox } from "../api/sandbox.js";
import { LIMITS, SandboxSpecSchema } from "../api/sandbox-spec.js";
import type { BackendName } from "../backends/backend.js";
import { type ConditionLike, setCondition } from "../controller/conditions.js";
import { apiStatus, fromApiError } from "../controller/errors.js";
import type { EventRecorder } from "../controller/events.js";
import type { Informer, KubeObject, ObjectSource } from "../controller/informer.js";
import { rawRequest, resourcePath } from "../controller/raw-request.js";
import type { StatusWriter } from "../controller/status-writer.js";
import type { Logger } from "../observability/logger.js";
import { withFinalizers } from "../sandbox/finalizer-at-create.js";
import { decidePool, type PooledSandbox } from "./decide.js";
import type { PoolGaugeRow, PoolMetrics } from "./metrics.js";
import { finishedPhase, poolOf, readyAtGeneration } from "./pooled.js";
import { REFILL_HOLD, type RefillHoldBounds, refillHold } from "./refill-hold.js";
import { RefillLimiter } from "./refill-limiter.js";
import { pooledSpec, templateHash } from "./template.js";

export const SANDBOX_RESOURCE = {
  group: "sandboxing.dev",
  version: "v1alpha1",
  plural: "sandboxes",
};

/** A create the cache has not shown yet still counts, so a lagging cache never makes a second one. */
const CREATE_EXPECTATION_MS = 30_000;
/**
 * Pooled sandboxes wait for a claim for at most a week, then are replaced; the
 * claim sets their real lifetime. Below 2^31 ms, so no timer that waits for an
 * expiry overflows (Node fires an overflowing timeout after 1 ms).
 */
const POOLED_TTL_SECONDS = Math.min(7 * 24 * 3600, LIMITS.maxTtlSeconds);

export interface PoolReconcilerDeps {
  kubeConfig: k8s.KubeConfig;
  pools: Informer<SandboxWarmPool & KubeObject>;
  templates: Informer<KubeObject & { spec?: unknown }>;
  sandboxes: ObjectSource<Sandbox & KubeObject>;
  status: StatusWriter;
  events: EventRecorder;
  metrics: PoolMetrics;
  /** The backend of a template that names none. */
  defaultBackend: BackendName;
  /** Bounds of the refill hold (default REFILL_HOLD). */
  refillHold?: RefillHoldBounds;
  log: Logger;
}

export class PoolReconciler {
  private readonly limiters = new Map<string, RefillLimiter>();
  /** Pool key -> names created and not yet in the cache, with when. */
  private readonly expected = new Map<string, Map<string, number>>();
  /** Sandbox name -> when this process created it, for the refill latency. */
  private readonly createdAt = new Map<string, number>();
  /** Pool key -> its claimed sandboxes not Ready yet, with when this process first saw each so. */
  private readonly waitingClaims = new Map<string, Map<string, number>>();
  /** Pool key -> when the refill hold now in force began (refill-hold.ts). */
  private readonly heldSince = new Map<string, number>();
  /** Last counts per pool, for the gauges. */
  readonly rows = new Map<string, PoolGaugeRow>();

  constructor(private readonly deps: PoolReconcilerDeps) {}

  async reconcile(
    key: string,
    signal: AbortSignal,
  ): Promise<{ requeueAfter?: number } | undefined> {
    const { deps } = this;
    const cached = deps.pools.get(key);
    // From our own last status write if the cache has not shown it yet: a
    // write from the older version would be skipped (awaitingCache), and with
    // it the count of the replacements this reconcile creates (`refills`).
    const pool = cached && deps.status.newest(cached);
    if (!pool || pool.metadata.deletionTimestamp) {
      // Kubernetes garbage collection deletes the unclaimed sandboxes it owns.
      this.limiters.delete(key);
      this.expected.delete(key);
      this.waitingClaims.delete(key);
      this.heldSince.delete(key);
      this.rows.delete(key);
      return;
    }
    const parsed = PoolSpecSchema.safeParse(pool.spec);
    if (!parsed.success) {
      deps.log.warn({ pool: key, err: parsed.error.message }, "pool spec does not parse; skipped");
      return;
    }
    const spec = parsed.data;
    const namespace = pool.metadata.namespace!;
    const name = pool.metadata.name!;
    const tmplObj = deps.templates.get(`${namespace}/${spec.templateRef.name}`);
    const tmpl = tmplObj && SandboxSpecSchema.safeParse(tmplObj.spec);
    const template = tmpl?.success ? tmpl.data : undefined;
    const hash = template && templateHash(template);

    const now = Date.now();
    const mine = deps.sandboxes
      .list()
      .filter((s) => s.metadata.namespace === namespace && poolOf(s) === name);
    const expected = this.expectations(key, mine, now);
    const view: PooledSandbox[] = mine.map((s) => ({
      name: s.metadata.name!,
      hash: s.metadata.labels?.[Labels.templateHash],
      ready: readyAtGeneration(s),
      deleting: !!s.metadata.deletionTimestamp,
      finished: !!finishedPhase(s),
      createdMs: new Date(s.metadata.creationTimestamp ?? now).getTime(),
    }));
    for (const n of expected)
      view.push({ name: n, hash, ready: false, deleting: false, createdMs: now });
    this.observeRefills(namespace, view);

    const d = decidePool({ spec, templateHash: hash, sandboxes: view });

    for (const victim of d.remove) {
      const s = mine.find((x) => x.metadata.name === victim);
      if (s) await this.deleteUnclaimed(s, signal);
    }
    const claimedList = deps.sandboxes
      .list()
      .filter(
        (s) =>
          s.metadata.namespace === namespace &&
          s.metadata.labels?.[Labels.claimedFromPool] === name &&
          !s.metadata.deletionTimestamp,
      );
    const waitingSince = this.trackWaitingClaims(key, claimedList, now);

    let created = 0;
    let requeueAfter: number | undefined;
    const hold =
      d.create > 0
        ? refillHold(
            { waitingSinceMs: waitingSince, heldSinceMs: this.heldSince.get(key), nowMs: now },
            deps.refillHold ?? REFILL_HOLD,
          )
        : ({ hold: false } as const);
    if (!hold.hold) this.heldSince.delete(key);
    if (hold.hold) {
      // Claims are being served from this pool: its replacements wait (refill-hold.ts).
      this.heldSince.set(key, hold.heldSinceMs);
      requeueAfter = hold.recheckInMs;
      deps.log.debug(
        { pool: key, waitingClaims: waitingSince.length, want: d.create },
        "refill held while claims wait",
      );
    } else if (d.create > 0 && template && hash) {
      const limiter = this.limiter(key, spec.refill, now);
      const { granted, nextInMs } = limiter.take(d.create, now);
      requeueAfter = nextInMs;
      const body = (sandboxName: string) => ({
        apiVersion: API_VERSION,
        kind: SANDBOX_KIND,
        metadata: {
          name: sandboxName,
          namespace,
          ...withFinalizers(template.backend ?? deps.defaultBackend),
          labels: {
            [Labels.managedBy]: MANAGED_BY,
            [Labels.pool]: name,
            [Labels.templateHash]: hash,
          },
          ownerReferences: [
            {
              apiVersion: API_VERSION,
              kind: POOL_KIND,
              name,
              uid: pool.metadata.uid!,
              controller: true,
              blockOwnerDeletion: true,
            },
          ],
        },
        spec: {
          ...pooledSpec(template),
          lifetime: { ttlSeconds: POOLED_TTL_SECONDS, onExpire: "Delete" },
        },
      });
      const results = await Promise.allSettled(
        Array.from({ length: granted }, async () => {
          const sandboxName = `${name}-${randomBytes(4).toString("hex").slice(0, 6)}`;
          this.expect(key, sandboxName, now);
          try {
            await rawRequest(deps.kubeConfig, "POST", resourcePath(SANDBOX_RESOURCE, namespace), {
              body: body(sandboxName),
              signal,
            });
            this.createdAt.set(`${namespace}/${sandboxName}`, performance.now());
          } catch (err) {
            this.expected.get(key)?.delete(sandboxName);
            throw err;
          }
        }),
      );
      created = results.filter((r) => r.status === "fulfilled").length;
      deps.metrics.created.inc(created);
      const failed = results.find((r) => r.status === "rejected");
      if (created > 0)
        deps.events.record(
          { apiVersion: API_VERSION, kind: POOL_KIND, metadata: pool.metadata },
          "Normal",
          "Refilling",
          `created ${created} sandbox(es) from template ${spec.templateRef.name}`,
        );
      if (failed) {
        if (created === 0) throw fromApiError((failed as PromiseRejectedResult).reason);
        deps.log.warn(
          { pool: key, err: String((failed as PromiseRejectedResult).reason) },
          "some pool creates failed",
        );
        requeueAfter = Math.min(requeueAfter ?? 1000, 1000);
      }
    }

    const claimed = claimedList.length;
    const status = this.status(pool, spec.templateRef.name, d, hash, claimed, created);
    this.rows.set(key, {
      namespace,
      pool: name,
      target: d.target,
      total: d.counts.total,
      ready: d.counts.ready,
      claimed,
    });
    await deps.status.write(pool, status, { signal });
    return requeueAfter !== undefined ? { requeueAfter } : undefined;
  }

  private status(
    pool: SandboxWarmPool,
    templateName: string,
    d: ReturnType<typeof decidePool>,
    hash: string | undefined,
    claimed: number,
    created: number,
  ): PoolStatus {
    const now = new Date();
    const gen = pool.metadata.generation;
    let conditions = (pool.status?.conditions ?? []) as ConditionLike[];
    const prevTemplate = conditions.find((c) => c.type === PoolConditionType.TemplateAvailable);
    conditions = setCondition(
      conditions,
      hash
        ? {
            type: PoolConditionType.TemplateAvailable,
            status: "True",
            reason: PoolReason.TemplateFound,
            message: `template ${templateName} exists`,
            observedGeneration: gen,
          }
        : {
            type: PoolConditionType.TemplateAvailable,
            status: "False",
            reason: PoolReason.TemplateNotFound,
            message: `SandboxTemplate ${templateName} does not exist: the pool makes nothing and keeps its unclaimed sandboxes`,
            observedGeneration: gen,
          },
      now,
    );
    if (!hash && prevTemplate?.status !== "False")
      this.deps.events.record(
        { apiVersion: API_VERSION, kind: POOL_KIND, metadata: pool.metadata },
        "Warning",
        PoolReason.TemplateNotFound,
        `SandboxTemplate ${templateName} does not exist`,
      );
    const filled =
      d.counts.ready >= d.target && d.counts.updated >= Math.min(d.target, d.counts.total);
    conditions = setCondition(
      conditions,
      {
        type: PoolConditionType.Ready,
        status: filled ? "True" : "False",
        reason: filled ? PoolReason.Filled : PoolReason.Filling,
        message: `${d.counts.ready} of ${d.target} sandboxes ready`,
        observedGeneration: gen,
      },
      now,
    );
    return {
      replicas: d.counts.total + created - d.remove.length,
      readyReplicas: d.counts.ready,
      updatedReplicas: d.counts.updated,
      claimed,
      refills: (pool.status?.refills ?? 0) + created,
      selector: `${Labels.pool}=${pool.metadata.name}`,
      ...(hash
        ? { templateHash: hash }
        : pool.status?.templateHash
          ? { templateHash: pool.status.templateHash }
          : {}),
      conditions: conditions as PoolStatus["conditions"],
    };
  }

  /**
   * Delete an unclaimed sandbox only as the cache saw it: a claim that bound it
   * meanwhile changed its resourceVersion, and the delete is refused (409).
   */
  private async deleteUnclaimed(s: Sandbox, signal: AbortSignal): Promise<void> {
    try {
      await rawRequest(
        this.deps.kubeConfig,
        "DELETE",
        resourcePath(SANDBOX_RESOURCE, s.metadata.namespace, s.metadata.name),
        {
          body: {
            propagationPolicy: "Background",
            preconditions: { uid: s.metadata.uid, resourceVersion: s.metadata.resourceVersion },
          },
          signal,
        },
      );
    } catch (err) {
      const code = apiStatus(err);
      if (code === 404 || code === 409) return; // gone already, or a claim won it
      throw fromApiError(err);
    }
  }

  /** When each claimed sandbox of the pool still starting for its claim was first seen so (forgotten once Ready). */
  private trackWaitingClaims(key: string, claimed: Sandbox[], now: number): number[] {
    const before = this.waitingClaims.get(key);
    const after = new Map<string, number>();
    for (const s of claimed)
      if (!readyAtGeneration(s) && !finishedPhase(s))
        after.set(s.metadata.name!, before?.get(s.metadata.name!) ?? now);
    if (after.size) this.waitingClaims.set(key, after);
    else this.waitingClaims.delete(key);
    return [...after.values()];
  }

  private limiter(key: string, refill: { perSecond: number; burst: number }, now: number) {
    let l = this.limiters.get(key);
    if (!l) {
      l = new RefillLimiter(refill.perSecond, refill.burst, now);
      this.limiters.set(key, l);
    } else l.configure(refill.perSecond, refill.burst);
    return l;
  }

  private expect(key: string, name: string, now: number): void {
    const m = this.expected.get(key) ?? new Map<string, number>();
    this.expected.set(key, m);
    m.set(name, now);
  }

  /** Names created but not in the cache yet (and not too long ago). */
  private expectations(key: string, cached: Sandbox[], now: number): string[] {
    const m = this.expected.get(key);
    if (!m) return [];
    const seen = new Set(cached.map((s) => s.metadata.name));
    for (const [n, at] of m) if (seen.has(n) || now - at > CREATE_EXPECTATION_MS) m.delete(n);
    // A created sandbox a claim took before the cache showed it under the pool is not expected any more.
    return [...m.keys()].filter((n) => !this.deps.sandboxes.get(`${key.split("/")[0]}/${n}`));
  }

  private observeRefills(namespace: string, view: PooledSandbox[]): void {
    for (const s of view) {
      const k = `${namespace}/${s.name}`;
      const t = s.ready ? this.createdAt.get(k) : undefined;
      if (t === undefined) continue;
      this.deps.metrics.refillSeconds.observe((performance.now() - t) / 1000);
      this.createdAt.delete(k);
    }
    // Bounded: creates whose sandbox never became ready are forgotten.
    if (this.createdAt.size > 10_000) this.createdAt.clear();
  }
}
