// The pool's decisions, as a pure function of what is observed: the pool's
// spec, its template (or its absence) and its unclaimed sandboxes. The shell
// (controller.ts) creates and deletes what this returns and writes the status;
// nothing here does I/O, so every path is table-tested (decide.test.ts).
//
// Rolling a template change follows a Deployment's budget: at most
// `replicas + maxSurge` unclaimed sandboxes exist at once, and at least
// `replicas - maxUnavailable` of them stay ready, so claims never find the
// pool emptier than the budget allows. Sandboxes that are not ready cost no
// availability and go first.
import type { PoolSpec } from "../api/pools.js";

/** An unclaimed sandbox of the pool as the decision needs it. */
export interface PooledSandbox {
  name: string;
  /** Its template-hash label. */
  hash: string | undefined;
  ready: boolean;
  /** Being deleted already: counts for nothing. */
  deleting: boolean;
  /** Its workload ended (Succeeded, Failed, Expired): no claim can use it; removed. */
  finished?: boolean;
  /** Creation time (ms since epoch): the youngest go first when scaling down. */
  createdMs: number;
}

export interface PoolInput {
  spec: PoolSpec;
  /** Hash of the template now; undefined when the template does not exist. */
  templateHash: string | undefined;
  sandboxes: PooledSandbox[];
}

export interface PoolDecision {
  /** The replicas the pool keeps: spec.replicas within min..max. */
  target: number;
  /** New sandboxes to make (before the refill rate limit). */
  create: number;
  /** Unclaimed sandboxes to delete (each guarded by its resourceVersion: a claim may win it first). */
  remove: string[];
  counts: { total: number; ready: number; updated: number };
}

export function targetReplicas(spec: PoolSpec): number {
  let n = spec.replicas;
  if (spec.minReplicas !== undefined) n = Math.max(n, spec.minReplicas);
  if (spec.maxReplicas !== undefined) n = Math.min(n, spec.maxReplicas);
  return n;
}

/** Unready before ready, then youngest first: the ones a claim is least likely to want. */
const removalOrder = (a: PooledSandbox, b: PooledSandbox) =>
  Number(a.ready) - Number(b.ready) || b.createdMs - a.createdMs;

export function decidePool({ spec, templateHash, sandboxes }: PoolInput): PoolDecision {
  const target = targetReplicas(spec);
  const finished = sandboxes.filter((s) => !s.deleting && s.finished).map((s) => s.name);
  const live = sandboxes.filter((s) => !s.deleting && !s.finished);
  const counts = {
    total: live.length,
    ready: live.filter((s) => s.ready).length,
    updated: live.filter((s) => s.hash === templateHash).length,
  };
  // Without a template nothing can be made or rolled; what exists stays claimable.
  if (templateHash === undefined) return { target, create: 0, remove: finished, counts };

  const fresh = live.filter((s) => s.hash === templateHash).sort(removalOrder);
  const stale = live.filter((s) => s.hash !== templateHash).sort(removalOrder);
  const remove: string[] = [...finished];

  // Scale down: too many up-to-date ones.
  const excessFresh = Math.max(0, fresh.length - target);
  remove.push(...fresh.slice(0, excessFresh).map((s) => s.name));
  const keptFresh = fresh.slice(excessFresh);

  // Roll: stale ones go while availability allows.
  const { maxSurge, maxUnavailable } = spec.updateStrategy;
  const minReady = Math.max(0, target - maxUnavailable);
  let ready = keptFresh.filter((s) => s.ready).length + stale.filter((s) => s.ready).length;
  let total = keptFresh.length + stale.length;
  let removedStale = 0;
  // (finished ones were not counted in total/ready: removing them changes neither)
  for (const s of stale) {
    // An unready one costs no availability a claim could use; a ready one goes
    // only while enough others stay ready.
    if (s.ready && ready - 1 < minReady) continue;
    remove.push(s.name);
    removedStale++;
    total--;
    if (s.ready) ready--;
  }
  const staleLeft = stale.length - removedStale;
  // Make up to the target with fresh ones, surging over it while stale ones remain.
  const ceiling = target + (staleLeft > 0 ? maxSurge : 0);
  const create = Math.max(0, Math.min(target - keptFresh.length, ceiling - total));
  return { target, create, remove, counts };
}
