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

/** What a backend can change in a running sandbox's egress, live and confirmed before Ready. */
export interface LiveEgress {
  /** Name rules (and the policy as a whole) reach the running sidecar before the claim is Ready. */
  names: boolean;
  /** Address rules and `defaultAction: allow` too (the sidecar judges them; the firewall is static). */
  addresses: boolean;
}

/**
 * Without a word from the composition root: the docker backend writes the
 * policy file into its sidecar inside the reconcile that reports the new
 * generation; the pod backend has no live channel.
 */
export const DEFAULT_LIVE_EGRESS: Readonly<Record<BackendName, LiveEgress>> = {
  docker: { names: true, addresses: false },
  pod: { names: false, addresses: false },
};

/**
 * Why a warm sandbox cannot serve this claim, or undefined when it can.
 *
 * - env, resources: a running process cannot be given new variables, and the
 *   sandbox's limits are fixed when its containers are made.
 * - An egress policy the backend cannot deliver live (`live`): the pod
 *   backend without its policy channel (the kubelet-synced file could make a
 *   claim Ready before its policy arrived); address rules and
 *   `defaultAction: allow` while the firewall, installed closed at start by
 *   the lockdown, still holds them (src/egress/README.md, "Policy at claim
 *   time").
 */
export function warmBlocker(
  claim: ClaimSpec,
  template: SandboxSpec,
  backend: BackendName,
  live: LiveEgress = DEFAULT_LIVE_EGRESS[backend],
): string | undefined {
  if (claim.env?.length) return "env: a running workload cannot take new environment variables";
  if (claim.resources) return "resources: a running sandbox cannot be resized";
  const policy = claimPolicy(claim, template);
  const rules = policy.rules ?? [];
  if (rules.length === 0 && policy.defaultAction === "deny") return undefined;
  if (!live.names)
    return `egress: the ${backend} backend cannot deliver a policy to a running sandbox within a claim's time (no policy channel)`;
  if (live.addresses) return undefined;
  if (policy.defaultAction === "allow")
    return "egress: defaultAction allow needs a firewall installed open at start";
  const address = rules.find((r) => isAddressTarget(r.target));
  if (address)
    return `egress: address rule ${address.target} needs the firewall installed at start`;
  return undefined;
}

/**
 * Whether the egress sidecar judges address rules and `defaultAction: allow`
 * per connection (original destination), leaving nothing policy-dependent in
 * the firewall. Until it does, a claim with address rules is served cold on
 * both backends; the sidecar rewrite that does it flips this.
 */
export const SIDECAR_JUDGES_ADDRESSES = false;

/** The pod backend's live egress: everything the sidecar judges, once the policy channel is on. */
export function podLiveEgress(channel: boolean): LiveEgress {
  return { names: channel, addresses: channel && SIDECAR_JUDGES_ADDRESSES };
}
