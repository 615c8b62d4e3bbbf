// The order in which the Sandbox controller's work queue hands out keys when
// more are waiting than it has workers: someone waiting for a sandbox first,
// a warm pool's stock last. A burst of claims binds many pooled sandboxes at
// once, and each binding makes its pool create a replacement; the
// replacements' reconciles (containers or Pods made and started, seconds each)
// would otherwise take the workers in arrival order while the claimed
// sandboxes' short warm reconciles (a policy delivered) wait behind them.
import { Labels } from "../api/labels.js";
import type { Sandbox } from "../api/sandbox.js";
import { claimUidOf, finishedPhase, readyAtGeneration } from "../pool/pooled.js";

/** Work queue priorities (higher first; see src/controller/workqueue.ts). */
export const SandboxPriority = {
  /** Bound to a claim and not Ready at its generation yet: the claim waits for it (warm or cold). */
  claimWaiting: 10,
  /** Everything else: a sandbox made directly, a claimed one already served, one being deleted. */
  normal: 0,
  /** An unclaimed pooled sandbox: nobody waits for it until a claim takes it (then it moves up). */
  pooled: -10,
} as const;

/**
 * Workers beyond --concurrency for claimed sandboxes not Ready yet, as a
 * multiple of it (64 more by default). A warm claim's reconcile mostly waits
 * (two container reads, one status write): in a burst of claims larger than
 * the workers, the later claims would otherwise queue behind the earlier ones'
 * waits (bench/results/pools-burst.md: a burst of 100 waited 2.3 s p50 in the
 * queue with 16). A cold claim's sandbox takes the lane too: someone waits.
 */
export const CLAIM_LANE_FACTOR = 4;

export function sandboxPriority(s: Sandbox | undefined): number {
  if (!s || s.metadata.deletionTimestamp) return SandboxPriority.normal;
  if (claimUidOf(s)) {
    return readyAtGeneration(s) || finishedPhase(s)
      ? SandboxPriority.normal
      : SandboxPriority.claimWaiting;
  }
  if (s.metadata.labels?.[Labels.pool]) return SandboxPriority.pooled;
  return SandboxPriority.normal;
}
