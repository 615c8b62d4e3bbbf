// Claims in the SDK: what a caller of Sandbox.claim(template, options) asks
// for, as a SandboxClaim (validated by the CRD's own zod schema, so a bad
// option fails here with its name, not later as a condition), and what a
// claim's status means to a caller waiting for it. Pure: Sandbox.claim
// (sandbox.ts) sends, watches and builds the handle.
import type { z } from "zod";
import { API_VERSION, CLAIM_KIND } from "../../../src/api/group.js";
import { ClaimConditionType, ClaimReason } from "../../../src/api/pool-conditions.js";
import {
  CLAIM_NAME_MAX_LENGTH,
  CLAIM_NAME_PATTERN,
  type ClaimSource,
  ClaimSpecSchema,
  type ClaimStatus,
} from "../../../src/api/pools.js";
import type { EgressPolicySchema, ResourcesSchema } from "../../../src/api/sandbox-spec.js";
import { SandboxError } from "../../../src/dataplane/errors.js";
import type { ClientOptions } from "./sandbox.js";

export type ClaimSpecInput = z.input<typeof ClaimSpecSchema>;
export type EgressPolicyInput = z.input<typeof EgressPolicySchema>;
export type ResourcesInput = z.input<typeof ResourcesSchema>;

export interface ClaimOptions extends ClientOptions {
  /** The SandboxWarmPool to take a ready sandbox from (default: any pool of the template). */
  pool?: string;
  /** This sandbox's egress policy, replacing the template's; it reaches a warm sandbox live. */
  egress?: EgressPolicyInput;
  /** Lifetime in seconds, counted from the claim (default: the template's). */
  ttlSeconds?: number;
  /** Absolute expiry instead of ttlSeconds. */
  expiresAt?: string | Date;
  /** At expiry: Delete (default) or Retain the sandbox with phase Expired. */
  onExpire?: "Delete" | "Retain";
  /** Environment added to the template's. A running workload cannot take it: served cold. */
  env?: Record<string, string> | { name: string; value: string }[];
  /** Resources replacing the template's. Served cold. */
  resources?: ResourcesInput;
  /** Added to the sandbox's labels and annotations (the claim's win). */
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** The claim's name (a cold sandbox takes it too); default generated ("sbx-xxxxx"). */
  name?: string;
  /**
   * Wait until the claim is Ready (its policy in force) and the agent
   * answers (default true); a number is the timeout in ms (default 120 000).
   * false: return once a sandbox is bound.
   */
  waitUntilReady?: boolean | number;
}

/** The claim behind a Sandbox handle from Sandbox.claim. */
export interface ClaimInfo {
  name: string;
  uid: string;
  /** Warm: a ready pooled sandbox; Warming: one still starting; Cold: created for the claim. */
  source?: ClaimSource;
  /** Why it was served cold. */
  coldReason?: string;
  /** The pool it came from. */
  pool?: string;
  /** Claim creation to Ready, as the controller measured it. */
  readyMilliseconds?: number;
  expiresAt?: string;
}

/** Default generated-name prefix of a claim (and of the cold sandbox named after it). */
export const CLAIM_NAME_PREFIX = "sbx-";

/** The option a spec path came from, for errors that name what the caller wrote. */
function optionOf(path: PropertyKey[]): string {
  const [head, second, ...rest] = path.map(String);
  if (head === "templateRef") return "template";
  if (head === "poolRef") return "pool";
  if (head === "lifetime") return second ?? "ttlSeconds";
  return [head, second, ...rest].filter((p) => p !== undefined).join(".");
}

function envList(env: ClaimOptions["env"]): { name: string; value: string }[] | undefined {
  if (!env) return undefined;
  return Array.isArray(env) ? env : Object.entries(env).map(([name, value]) => ({ name, value }));
}

/**
 * The SandboxClaim a call asks for. Throws a SandboxError naming the option
 * (and the spec field) when the CRD's schema would refuse it.
 */
export function claimBody(template: string, o: ClaimOptions = {}) {
  if (o.name !== undefined) {
    if (o.name.length > CLAIM_NAME_MAX_LENGTH || !new RegExp(CLAIM_NAME_PATTERN).test(o.name))
      throw new SandboxError(
        `invalid claim: name: "${o.name}" must be a DNS-1035 label (lower-case letters, digits and '-', starting with a letter, at most ${CLAIM_NAME_MAX_LENGTH} characters)`,
      );
  }
  const lifetime =
    o.ttlSeconds !== undefined || o.expiresAt !== undefined || o.onExpire !== undefined
      ? {
          ...(o.ttlSeconds !== undefined ? { ttlSeconds: o.ttlSeconds } : {}),
          ...(o.expiresAt !== undefined
            ? {
                expiresAt:
                  o.expiresAt instanceof Date
                    ? o.expiresAt.toISOString().replace(/\.\d{3}Z$/, "Z")
                    : o.expiresAt,
              }
            : {}),
          ...(o.onExpire !== undefined ? { onExpire: o.onExpire } : {}),
        }
      : undefined;
  const env = envList(o.env);
  const spec: ClaimSpecInput = {
    templateRef: { name: template },
    ...(o.pool !== undefined ? { poolRef: { name: o.pool } } : {}),
    ...(o.egress !== undefined ? { egress: o.egress } : {}),
    ...(lifetime ? { lifetime } : {}),
    ...(env ? { env } : {}),
    ...(o.resources !== undefined ? { resources: o.resources } : {}),
    ...(o.labels !== undefined ? { labels: o.labels } : {}),
    ...(o.annotations !== undefined ? { annotations: o.annotations } : {}),
  };
  const parsed = ClaimSpecSchema.safeParse(spec);
  if (!parsed.success) {
    const first = parsed.error.issues[0]!;
    throw new SandboxError(
      `invalid claim: ${optionOf(first.path)}: ${first.message} (spec.${first.path.join(".")})`,
    );
  }
  return {
    apiVersion: API_VERSION,
    kind: CLAIM_KIND,
    metadata: o.name !== undefined ? { name: o.name } : { generateName: CLAIM_NAME_PREFIX },
    spec,
  };
}

/** What a claim's status means to a caller waiting for its sandbox. */
export type ClaimVerdict =
  /** Ready: its sandbox is ready with the claim's policy in force. */
  | { state: "ready"; sandboxName: string }
  /** A sandbox is the claim's; not ready yet. */
  | { state: "bound"; sandboxName: string }
  | { state: "pending"; message?: string }
  /**
   * Will not be served as things stand. `recheck`: the controller may only
   * not have seen something yet (a template made a moment ago): confirm first.
   */
  | { state: "failed"; reason: string; message: string; recheck?: "template" };

interface ClaimLike {
  metadata?: { name?: string; generation?: number };
  status?: ClaimStatus;
}

/** Reasons a claim waits forever on: nothing changes them but the caller. */
const STUCK = new Set<string>([ClaimReason.TemplateNotFound, ClaimReason.NameTaken]);

export function claimVerdict(claim: ClaimLike): ClaimVerdict {
  const s = claim.status;
  const cond = (type: string) => s?.conditions?.find((c) => c.type === type);
  const ready = cond(ClaimConditionType.Ready);
  const bound = cond(ClaimConditionType.Bound);
  const what = `claim ${claim.metadata?.name ?? "?"}`;
  if (s?.phase === "Failed" || s?.phase === "Expired") {
    return {
      state: "failed",
      reason: ready?.reason ?? s.phase,
      message: `${what} is ${s.phase}${ready?.message ? `: ${ready.message}` : ""}`,
    };
  }
  if (bound?.status === "False" && bound.reason && STUCK.has(bound.reason)) {
    return {
      state: "failed",
      reason: bound.reason,
      message: `${what}: ${bound.message ?? bound.reason}`,
      ...(bound.reason === ClaimReason.TemplateNotFound ? { recheck: "template" as const } : {}),
    };
  }
  if (s?.sandboxName) {
    // Ready on a status that reflects the claim as it is now.
    const current =
      s.observedGeneration === undefined ||
      claim.metadata?.generation === undefined ||
      s.observedGeneration >= claim.metadata.generation;
    if (s.phase === "Ready" && ready?.status === "True" && current)
      return { state: "ready", sandboxName: s.sandboxName };
    return { state: "bound", sandboxName: s.sandboxName };
  }
  return { state: "pending", ...(ready?.message ? { message: ready.message } : {}) };
}

export function claimInfoOf(claim: {
  metadata: { name?: string; uid?: string };
  status?: ClaimStatus;
}): ClaimInfo {
  const s = claim.status ?? {};
  return {
    name: claim.metadata.name!,
    uid: claim.metadata.uid!,
    ...(s.source ? { source: s.source } : {}),
    ...(s.coldReason ? { coldReason: s.coldReason } : {}),
    ...(s.pool ? { pool: s.pool } : {}),
    ...(s.readyMilliseconds !== undefined ? { readyMilliseconds: s.readyMilliseconds } : {}),
    ...(s.expiresAt ? { expiresAt: s.expiresAt } : {}),
  };
}
