// The order in which the Sandbox controller's work queue hands out keys when
// more are waiting than it has workers: someone waiting for a sandbox first,
// a warm pool's stock last. A burst of claims binds many pooled sandboxes at
// once, and each binding makes its pool create a replacement; the
// replacements' reconciles (containers or Pods made and started, seconds each)
// would otherwise take the workers in arrival order while the claimed
// sandboxes' short warm reconciles (a policy delivered) wait behind them.
import { ConditionType } from "../api/conditions.js";
import { Labels } from "../api/labels.js";
import type { Sandbox } from "../api/sandbox.js";
import { isTrue } from "../controller/conditions.js";
import { claimUidOf, finishedPhase, readyAtGeneration } from "../pool/pooled.js";

/** Running and Ready at some generation (an earlier one: before the claim's spec). */
function wasReady(s: Sandbox): boolean {
  return s.status?.phase === "Running" && isTrue(s.status.conditions, ConditionType.Ready);
}

/** Work queue priorities (higher first; see src/controller/workqueue.ts). */
export const SandboxPriority = {
  /**
   * Taken from a pool while Ready, not Ready at its new generation yet: the
   * claim waits for a short reconcile (its policy delivered to running
   * containers). Only these take the claim lane's extra workers.
   */
  claimWarm: 20,
  /**
   * Bound to a claim and not Ready yet otherwise (a cold start, a pooled
   * sandbox still starting): the claim waits for containers or a Pod to be
   * made, seconds of work; ahead of the others, with the regular workers.
   */
  claimWaiting: 10,
  /** Everything else: a sandbox made directly, a claimed one already served, one being deleted. */
  normal: 0,
  /** An unclaimed pooled sandbox: nobody waits for it until a claim takes it (then it moves up). */
  pooled: -10,
} as const;

/**
 * Workers beyond --concurrency for warm claimed sandboxes not Ready yet, as a
 * multiple of it (64 more by default). A warm claim's reconcile mostly waits
 * (a policy file written, one status write): in a burst of claims larger than
 * the workers, the later claims would otherwise queue behind the earlier ones'
 * waits (bench/results/pools-burst.md: a burst of 100 waited 2.3 s p50 in the
 * queue with 16). A cold claim's sandbox does not take the lane: its
 * reconcile makes containers or a Pod, and 80 of those at once on a small
 * host would slow every claim; it goes first among the regular workers.
 */
export const CLAIM_LANE_FACTOR = 4;

export function sandboxPriority(s: Sandbox | undefined): number {
  if (!s || s.metadata.deletionTimestamp) return SandboxPriority.normal;
  if (claimUidOf(s)) {
    if (readyAtGeneration(s) || finishedPhase(s)) return SandboxPriority.normal;
    return s.metadata.labels?.[Labels.claimedFromPool] && wasReady(s)
      ? SandboxPriority.claimWarm
      : SandboxPriority.claimWaiting;
  }
  if (s.metadata.labels?.[Labels.pool]) return SandboxPriority.pooled;
  return SandboxPriority.normal;
}
