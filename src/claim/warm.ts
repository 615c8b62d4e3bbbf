// Whether a running pooled sandbox can become what a claim asks for, live.
// What it cannot take is served by a cold start (recorded with this reason),
// never refused: a claim always gets a sandbox.
import type { ClaimSpec } from "../api/pools.js";
import type { EgressPolicy, SandboxSpec } from "../api/sandbox-spec.js";
import type { BackendName } from "../backends/backend.js";
import { isAddressTarget } from "../egress/contract.js";

/** The claim's egress policy: its own, or the template's. */
export function claimPolicy(claim: ClaimSpec, template: SandboxSpec): EgressPolicy {
  return claim.egress ?? template.network.egress;
}

/**
 * Why a warm sandbox cannot serve this claim, or undefined when it can.
 *
 * - env, resources: a running process cannot be given new variables, and the
 *   sandbox's limits are fixed when its containers are made.
 * - An egress policy with address rules, or defaultAction allow: the pooled
 *   sandbox's firewall was installed closed, at start, by the lockdown; only
 *   name rules are followed live by the sidecar today (docker: the policy
 *   file; see src/egress/README.md "Policy at claim time" for the channel
 *   that lifts this).
 * - The pod backend: its policy file is a downward-API volume, refreshed on
 *   the kubelet's sync period (up to a minute), so a claim could report Ready
 *   before its policy arrived. Until the sidecar pulls its policy (the design
 *   in src/egress/README.md), a claim with any egress rule is served cold there.
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
  if (policy.defaultAction === "allow")
    return "egress: defaultAction allow needs a firewall installed open at start";
  const address = rules.find((r) => isAddressTarget(r.target));
  if (address)
    return `egress: address rule ${address.target} needs the firewall installed at start`;
  return undefined;
}
