// Whether a running pooled sandbox can become what a claim asks for, live.
// What it cannot take is served by a cold start (recorded with this reason),
// never refused: a claim always gets a sandbox.
import type { ClaimSpec } from "../api/pools.js";
import type { EgressPolicy, SandboxSpec } from "../api/sandbox-spec.js";
import type { BackendName } from "../backends/backend.js";

/** The claim's egress policy: its own, or the template's. */
export function claimPolicy(claim: ClaimSpec, template: SandboxSpec): EgressPolicy {
  return claim.egress ?? template.network.egress;
}

/**
 * Why a warm sandbox cannot serve this claim, or undefined when it can.
 *
 * - env, resources: a running process cannot be given new variables, and the
 *   sandbox's limits are fixed when its containers are made.
 * - Egress: the firewall holds no policy (every rule and defaultAction is the
 *   sidecar's, read from its policy file), so any policy is live wherever the
 *   channel to the sidecar is fast. The docker backend writes the file inside
 *   the reconcile that reports the claim's generation: warm for every policy.
 *   The pod backend's file is a downward-API volume, refreshed on the kubelet's
 *   sync period (up to a minute), so a claim could report Ready before its
 *   policy arrived; until the sidecar pulls its policy (src/egress/README.md,
 *   "The channel that lifts both limits"), a claim with any egress rule or
 *   defaultAction allow is served cold there.
 */
export function warmBlocker(
  claim: ClaimSpec,
  template: SandboxSpec,
  backend: BackendName,
): string | undefined {
  if (claim.env?.length) return "env: a running workload cannot take new environment variables";
  if (claim.resources) return "resources: a running sandbox cannot be resized";
  const policy = claimPolicy(claim, template);
  const rules = policy.rules ?? [];
  if (rules.length === 0 && policy.defaultAction === "deny") return undefined;
  if (backend === "pod")
    return "egress: the pod backend cannot yet deliver a policy to a running sandbox within a claim's time";
  return undefined;
}
