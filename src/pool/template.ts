// What a pool makes from its template: the pooled Sandbox's spec and the hash
// that tells an up-to-date pooled sandbox from one to roll.
import type { SandboxSpec } from "../api/sandbox-spec.js";
import { specHash } from "../backends/spec-hash.js";

/**
 * A pooled sandbox waits for a claim with no egress at all: whatever the
 * template allows arrives with the claim (the claim's own policy, or the
 * template's), never before. A workload that starts before anyone claimed it
 * can therefore reach nothing, not even what its template would allow.
 */
export const POOLED_EGRESS = { defaultAction: "deny" as const, rules: [] };

/** The spec of a pooled sandbox made from `template`. */
export function pooledSpec(template: SandboxSpec): SandboxSpec {
  return { ...template, network: { ...template.network, egress: POOLED_EGRESS } };
}

/** Hash of a template spec; a pooled sandbox labelled with another hash is rolled. */
export function templateHash(template: SandboxSpec): string {
  return specHash(template);
}
