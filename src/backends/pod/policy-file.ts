// When the reconcile writes a running Pod's policy annotation (the file a
// restarted sidecar starts from) itself. Pure; the shell is ensurePod.
//
// With the policy channel the running sidecar follows the endpoint, not the
// file, and the endpoint writes the annotation together with the sidecar's
// acknowledgement: one Pod write per policy change instead of two racing on
// the same Pod (two concurrent patches of one Pod measured ~70 ms each on the
// test apiserver, against ~25 ms one after the other; on the loaded node the
// reconcile's patch took up to 270 ms and held the claim's Ready back).
//
// The reconcile still writes it when the channel cannot: no channel, a
// sidecar that is not ready (it acknowledges nothing), an acknowledgement on
// the Pod without the file (an endpoint of an earlier version), or after
// POLICY_FILE_DEFER_MS without an acknowledgement. Meanwhile the file holds
// the previous policy, which only a sidecar restarting in that window reads
// (and then only until the channel delivers): a window the kubelet's own
// refresh of the file (its sync period, up to a minute) already had.
import type { EgressPolicy } from "../../api/sandbox-spec.js";
import { policyHash } from "../../policy-server/contract.js";

/** How long the reconcile leaves the file to the channel's acknowledgement. */
export const POLICY_FILE_DEFER_MS = 3_000;

export type PolicyFileAction = "none" | "write" | "defer";

export interface PolicyFileInput {
  /** The annotation already holds the Sandbox's policy (compared by digest, not text). */
  current: boolean;
  /** The Pod's sidecar follows the policy endpoint. */
  channel: boolean;
  /** The sidecar is ready (it can take and acknowledge a policy). */
  sidecarReady: boolean;
  /** The Pod itself records the current policy's acknowledgement. */
  ackOnPod: boolean;
  /** How long this policy's file write has been left to the channel so far (undefined: not yet). */
  deferredForMs: number | undefined;
  deferMs?: number;
}

export function policyFileAction(i: PolicyFileInput): PolicyFileAction {
  if (i.current) return "none";
  if (!i.channel || !i.sidecarReady || i.ackOnPod) return "write";
  if (i.deferredForMs !== undefined && i.deferredForMs >= (i.deferMs ?? POLICY_FILE_DEFER_MS))
    return "write";
  return "defer";
}

/** Whether a policy annotation's text holds `policy` (key order aside: the endpoint writes the apiserver's order). */
export function annotationHolds(text: string | undefined, policy: EgressPolicy): boolean {
  if (text === undefined) return false;
  try {
    return policyHash(JSON.parse(text) as EgressPolicy) === policyHash(policy);
  } catch {
    return false;
  }
}
