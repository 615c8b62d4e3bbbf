// Templates, warm pools and claims: the API for handing out ready sandboxes.
//
// Why a SandboxClaim and not Sandbox.spec.templateRef: a warm sandbox already
// exists, under a name the pool chose, before anyone asks for it. A Sandbox
// with a templateRef would have to *become* that object, and Kubernetes
// objects cannot be renamed or merged; the request and the sandbox it gets
// are two objects with two lifecycles. A claim is the request: it records
// what was asked (template, pool, per-claim overrides), what it got
// (status.sandboxName, warm or cold) and how long that took, and it owns the
// sandbox it got, so deleting the claim deletes the sandbox. It also lets a
// cluster admin grant "create sandboxclaims" without granting "create
// sandboxes": a user may then run only what a template allows.
import type { V1ObjectMeta } from "@kubernetes/client-node";
import { z } from "zod";
import { API_VERSION, CLAIM_KIND, POOL_KIND, TEMPLATE_KIND } from "./group.js";
import {
  EgressPolicySchema,
  EnvVarSchema,
  EXPIRY_ACTIONS,
  LIMITS,
  ResourcesSchema,
  SandboxSpecSchema,
} from "./sandbox-spec.js";
import { ConditionSchema } from "./sandbox-status.js";
import {
  boundedString,
  cel,
  crossFieldRule,
  DNS_1035_LABEL_PATTERN,
  dateTime,
  doc,
  generation,
  listType,
  regex,
} from "./schema-helpers.js";

const metadata = z.custom<V1ObjectMeta>((m) => typeof m === "object" && m !== null);

/** Names of pooled sandboxes are the pool's name plus a 6-character suffix; a claim's cold sandbox takes the claim's name. */
export const POOL_NAME_MAX_LENGTH = 56;
export const CLAIM_NAME_MAX_LENGTH = 63;

const localRef = (what: string) =>
  z.object({
    name: doc(
      boundedString(253, 1).regex(regex("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")),
      `Name of the ${what} in the same namespace.`,
    ),
  });

// ---- SandboxTemplate

export const SandboxTemplateSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(TEMPLATE_KIND),
  metadata,
  spec: SandboxSpecSchema,
});
export type SandboxTemplate = z.output<typeof SandboxTemplateSchema>;

// ---- SandboxWarmPool

export const UpdateStrategySchema = crossFieldRule(
  z.object({
    maxSurge: doc(
      z.int().min(0).max(1000).default(1),
      "How many sandboxes of the new template may exist above spec.replicas while the pool rolls. Defaults to 1.",
    ),
    maxUnavailable: doc(
      z.int().min(0).max(1000).default(0),
      "How many fewer than spec.replicas ready sandboxes the pool may have while it rolls. Defaults to 0: claims always find the pool as full as before.",
    ),
  }),
  {
    rule: "self.maxSurge > 0 || self.maxUnavailable > 0",
    message: "maxSurge and maxUnavailable cannot both be 0: the pool could never roll",
    path: ["maxSurge"],
  },
  (s) => s.maxSurge > 0 || s.maxUnavailable > 0,
);

export const RefillSchema = z.object({
  perSecond: doc(
    z.int().min(1).max(1000).default(10),
    "Sandboxes the pool creates per second at most, over any stretch of time. Defaults to 10.",
  ),
  burst: doc(
    z.int().min(1).max(1000).default(20),
    "Sandboxes the pool may create at once after a quiet stretch. Defaults to 20.",
  ),
});

export const PoolSpecSchema = crossFieldRule(
  z.object({
    templateRef: doc(
      localRef("SandboxTemplate"),
      "The SandboxTemplate the pool's sandboxes are made from.",
    ),
    replicas: doc(
      z.int().min(0).max(10000).default(1),
      "How many ready, unclaimed sandboxes the pool keeps. The scale subresource's replicas: `kubectl scale` and a HorizontalPodAutoscaler set it. Kept within minReplicas..maxReplicas.",
    ),
    minReplicas: doc(
      z.int().min(0).max(10000).optional(),
      "Lower bound the pool keeps even when replicas is set below it.",
    ),
    maxReplicas: doc(
      z.int().min(0).max(10000).optional(),
      "Upper bound the pool never exceeds, whatever replicas says.",
    ),
    refill: doc(
      RefillSchema.default({ perSecond: 10, burst: 20 }),
      "Rate limit on creating sandboxes, so refilling after a burst of claims does not swamp the backend.",
    ),
    updateStrategy: doc(
      UpdateStrategySchema.default({ maxSurge: 1, maxUnavailable: 0 }),
      "How unclaimed sandboxes are replaced when the template changes. Claimed sandboxes are never touched.",
    ),
  }),
  {
    rule: "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
    message: "minReplicas must not exceed maxReplicas",
    path: ["minReplicas"],
  },
  (p) =>
    p.minReplicas === undefined || p.maxReplicas === undefined || p.minReplicas <= p.maxReplicas,
);
export type PoolSpec = z.output<typeof PoolSpecSchema>;

export const PoolStatusSchema = z.object({
  replicas: doc(
    z.int().min(0).optional(),
    "Unclaimed sandboxes of the pool, ready or not (the scale subresource's status replicas).",
  ),
  readyReplicas: doc(
    z.int().min(0).optional(),
    "Unclaimed sandboxes that are ready to be claimed.",
  ),
  updatedReplicas: doc(
    z.int().min(0).optional(),
    "Unclaimed sandboxes made from the template as it is now.",
  ),
  claimed: doc(
    z.int().min(0).optional(),
    "Sandboxes that came from this pool and are bound to a claim now.",
  ),
  refills: doc(
    z.int().min(0).optional(),
    "Sandboxes the pool has created since it was made (a counter).",
  ),
  selector: doc(
    boundedString(1024).optional(),
    "Label selector of the pool's unclaimed sandboxes (for the scale subresource and an HPA).",
  ),
  templateHash: doc(
    boundedString(64).optional(),
    "Hash of the template spec the pool makes sandboxes from now.",
  ),
  conditions: doc(
    listType(z.array(ConditionSchema).max(16).optional(), "map", ["type"]),
    "Ready (readyReplicas reached replicas) and TemplateAvailable.",
  ),
  observedGeneration: doc(generation(), "The .metadata.generation this status reflects."),
});
export type PoolStatus = z.output<typeof PoolStatusSchema>;

export const SandboxWarmPoolSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(POOL_KIND),
  metadata,
  spec: PoolSpecSchema,
  status: PoolStatusSchema.optional(),
});
export type SandboxWarmPool = z.output<typeof SandboxWarmPoolSchema>;

// ---- SandboxClaim

/** Where a claim's sandbox came from. */
export const CLAIM_SOURCES = ["Warm", "Warming", "Cold"] as const;
export type ClaimSource = (typeof CLAIM_SOURCES)[number];
export const CLAIM_PHASES = ["Pending", "Bound", "Ready", "Expired", "Failed"] as const;
export type ClaimPhase = (typeof CLAIM_PHASES)[number];

const ClaimLifetimeSchema = crossFieldRule(
  z.object({
    ttlSeconds: doc(
      z.int().min(1).max(LIMITS.maxTtlSeconds).optional(),
      "Lifetime in seconds, counted from the claim's creation (not from when a pooled sandbox was made).",
    ),
    expiresAt: doc(dateTime().optional(), "Absolute expiry time, RFC 3339."),
    onExpire: doc(
      z.enum(EXPIRY_ACTIONS).default("Delete"),
      "What happens to the sandbox at expiry: Delete or Retain (kept with phase Expired).",
    ),
  }),
  {
    rule: "has(self.ttlSeconds) != has(self.expiresAt)",
    message: "exactly one of ttlSeconds or expiresAt must be set",
    path: ["ttlSeconds"],
  },
  (l) => (l.ttlSeconds !== undefined) !== (l.expiresAt !== undefined),
);

const stringMap = (what: string) =>
  doc(
    cel(z.record(boundedString(317, 1), boundedString(4096)).optional(), {
      rule: "self.size() <= 64",
      message: `at most 64 ${what}`,
    }),
    `${what[0]!.toUpperCase()}${what.slice(1)} added to the sandbox's own (the claim's win).`,
  );

export const ClaimSpecSchema = cel(
  z.object({
    templateRef: doc(localRef("SandboxTemplate"), "The template the sandbox is made from."),
    poolRef: doc(
      localRef("SandboxWarmPool").optional(),
      "The warm pool to take a ready sandbox from. Absent: any pool of this namespace made from templateRef. With no ready sandbox the claim is served by a cold start, never refused.",
    ),
    egress: doc(
      EgressPolicySchema.optional(),
      "This claim's egress policy, replacing the template's. It reaches a warm sandbox live, before the claim reports Ready; a pooled sandbox has no egress until it is claimed.",
    ),
    lifetime: doc(
      ClaimLifetimeSchema.optional(),
      "The sandbox's lifetime, counted from the claim. Absent: the template's, counted from the claim.",
    ),
    env: doc(
      listType(z.array(EnvVarSchema).max(LIMITS.env).optional(), "map", ["name"]),
      "Environment variables added to the template's. A running workload cannot take new variables: a claim with env is served cold.",
    ),
    resources: doc(
      ResourcesSchema.optional(),
      "Resources replacing the template's. A running workload cannot be resized: a claim with resources is served cold.",
    ),
    labels: stringMap("labels"),
    annotations: stringMap("annotations"),
  }),
  {
    rule: "self.templateRef == oldSelf.templateRef && (has(self.poolRef) == has(oldSelf.poolRef)) && (!has(self.poolRef) || self.poolRef == oldSelf.poolRef)",
    message: "templateRef and poolRef are immutable",
  },
);
export type ClaimSpec = z.output<typeof ClaimSpecSchema>;

export const ClaimStatusSchema = z.object({
  phase: doc(
    z.enum(CLAIM_PHASES).optional(),
    "Pending (no sandbox yet), Bound (a sandbox is the claim's but not ready with its policy yet), Ready, Expired, or Failed.",
  ),
  sandboxName: doc(boundedString(63).optional(), "Name of the Sandbox bound to this claim."),
  source: doc(
    z.enum(CLAIM_SOURCES).optional(),
    "Warm: a ready pooled sandbox; Warming: a pooled sandbox that was still starting; Cold: created for this claim.",
  ),
  coldReason: doc(
    boundedString(1024).optional(),
    "Why the claim was served cold (no ready sandbox, or an override a running workload cannot take).",
  ),
  pool: doc(boundedString(253).optional(), "The pool the sandbox came from, if any."),
  boundAt: doc(dateTime().optional(), "When the sandbox was bound to the claim."),
  readyAt: doc(dateTime().optional(), "When the claim first reported Ready."),
  readyMilliseconds: doc(
    z.int().min(0).optional(),
    "Milliseconds from the claim's creation to Ready, as the controller measured them.",
  ),
  expiresAt: doc(dateTime().optional(), "When the sandbox's lifetime runs out."),
  conditions: doc(
    listType(z.array(ConditionSchema).max(16).optional(), "map", ["type"]),
    "Bound and Ready.",
  ),
  observedGeneration: doc(generation(), "The .metadata.generation this status reflects."),
});
export type ClaimStatus = z.output<typeof ClaimStatusSchema>;

export const SandboxClaimSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(CLAIM_KIND),
  metadata,
  spec: ClaimSpecSchema,
  status: ClaimStatusSchema.optional(),
});
export type SandboxClaim = z.output<typeof SandboxClaimSchema>;

export const CLAIM_NAME_PATTERN = DNS_1035_LABEL_PATTERN;
