// Condition types and reasons of warm pools and claims. API, like the
// Sandbox's (conditions.ts): tools match on these strings.

export const PoolConditionType = {
  /** readyReplicas has reached the target. */
  Ready: "Ready",
  /** The template the pool names exists. */
  TemplateAvailable: "TemplateAvailable",
} as const;

export const ClaimConditionType = {
  /** A sandbox is bound to the claim. */
  Bound: "Bound",
  /** The bound sandbox is ready with the claim's egress policy in force. */
  Ready: "Ready",
} as const;

export const PoolReason = {
  /** Every sandbox the pool should keep is ready. */
  Filled: "Filled",
  /** Sandboxes are being made or are starting. */
  Filling: "Filling",
  /** The template exists. */
  TemplateFound: "TemplateFound",
  /** The template does not exist (deleted, or not made yet): the pool makes nothing and keeps what it has. */
  TemplateNotFound: "TemplateNotFound",
} as const;

export const ClaimReason = {
  /** No sandbox is bound yet. */
  Unbound: "Unbound",
  /** A ready pooled sandbox was bound. */
  BoundWarm: "BoundWarm",
  /** A pooled sandbox that was still starting was bound. */
  BoundWarming: "BoundWarming",
  /** A sandbox was created for the claim (the message says why). */
  BoundCold: "BoundCold",
  /** The sandbox has not yet reported the claim's spec (its policy) as applied and ready. */
  SandboxStarting: "SandboxStarting",
  /** The sandbox is ready with the claim's policy. */
  SandboxReady: "SandboxReady",
  /** The template does not exist. */
  TemplateNotFound: "TemplateNotFound",
  /** A Sandbox of the claim's name exists and belongs to someone else. */
  NameTaken: "NameTaken",
  /** The bound sandbox is gone (deleted, or expired). */
  SandboxLost: "SandboxLost",
  /** The claim's lifetime ran out. */
  Expired: "Expired",
  /** The sandbox itself ended (Succeeded or Failed). */
  SandboxFinished: "SandboxFinished",
} as const;
export type ClaimReason = (typeof ClaimReason)[keyof typeof ClaimReason];
