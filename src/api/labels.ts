// Labels and annotations the operator puts on what it creates. They are API:
// users select on them (`kubectl get pods -l sandboxing.dev/sandbox=NAME`), and
// the operator finds its objects (and orphans) by them after a restart.
import { GROUP } from "./group.js";

export const MANAGED_BY = "sandbox-operator";

export const Labels = {
  name: "app.kubernetes.io/name",
  instance: "app.kubernetes.io/instance",
  component: "app.kubernetes.io/component",
  managedBy: "app.kubernetes.io/managed-by",
  partOf: "app.kubernetes.io/part-of",
  /** Name of the owning Sandbox. */
  sandbox: `${GROUP}/sandbox`,
  /** UID of the owning Sandbox: an object whose Sandbox has another UID is an orphan. */
  sandboxUid: `${GROUP}/sandbox-uid`,
  /**
   * Sharded controllers (`--shards`): the shard of a Sandbox, "<i>-of-<K>", set by
   * the controller on the Sandbox and copied onto everything made for it, so
   * each replica watches only its shards' objects by this label.
   */
  shard: `${GROUP}/shard`,
  /** On an unclaimed pooled Sandbox: the pool keeping it. Removed when a claim takes it. */
  pool: `${GROUP}/pool`,
  /** On a pooled Sandbox: hash of the template spec it was made from (the pool rolls on a change). */
  templateHash: `${GROUP}/template-hash`,
  /** On a claimed Sandbox: the claim's name. */
  claim: `${GROUP}/claim`,
  /** On a claimed Sandbox: the claim's UID, how a claim finds its sandbox again after a restart. */
  claimUid: `${GROUP}/claim-uid`,
  /** On a claimed Sandbox that came from a pool: the pool's name (counted in its status.claimed). */
  claimedFromPool: `${GROUP}/claimed-from-pool`,
  /**
   * On the gateway's Pods ("true"): sandbox NetworkPolicies admit the agent
   * port from Pods carrying it in the gateway's namespace only (a label alone
   * can be copied by anyone who creates Pods somewhere).
   */
  gateway: `${GROUP}/gateway`,
} as const;

export const Annotations = {
  /** Hash of the desired spec an object was built from; a different hash means rebuild. */
  specHash: `${GROUP}/spec-hash`,
  /**
   * On a Sandbox whose spec.suspended was set for a reason other than a
   * person's request: IdleTimeout (auto-suspend). Read into the Suspended
   * condition's reason; removed on resume by whoever resumes.
   */
  suspendReason: `${GROUP}/suspend-reason`,
} as const;

/** Selector matching everything this operator manages. */
export const MANAGED_SELECTOR = `${Labels.managedBy}=${MANAGED_BY}`;
