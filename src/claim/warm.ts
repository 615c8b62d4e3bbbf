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
 * Whether a backend delivers a changed egress policy to a running sandbox and
 * confirms it before the sandbox reports the new generation Ready. The
 * firewall holds no policy (the sidecar judges every rule and defaultAction),
 * so the channel to the sidecar is all that matters.
 */
export interface LiveEgress {
  policy: boolean;
}

/**
 * Without a word from the composition root: the docker backend writes the
 * policy file into its sidecar inside the reconcile that reports the new
 * generation; the pod backend has no live channel.
 */
export const DEFAULT_LIVE_EGRESS: Readonly<Record<BackendName, LiveEgress>> = {
  docker: { policy: true },
  pod: { policy: false },
};

/**
 * Why a warm sandbox cannot serve this claim, or undefined when it can.
 *
 * - env, resources: a running process cannot be given new variables, and the
 *   sandbox's limits are fixed when its containers are made.
 * - Egress, where the backend cannot deliver a policy live (`live`): the pod
 *   backend without its policy channel, whose downward-API file is refreshed
 *   on the kubelet's sync period (up to a minute), so a claim could report
 *   Ready before its policy arrived. The docker backend writes the file inside
 *   the reconcile that reports the claim's generation; the pod backend's
 *   channel acknowledges the policy before EgressReady (src/egress/README.md,
 *   "Policy at claim time").
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
  if (!live.policy)
    return `egress: the ${backend} backend cannot deliver a policy to a running sandbox within a claim's time (no policy channel)`;
  return undefined;
}

/** The pod backend delivers a policy live once its policy channel is on. */
export function podLiveEgress(channel: boolean): LiveEgress {
  return { policy: channel };
}
