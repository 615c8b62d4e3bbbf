// Pure decisions of the policy endpoint: who a reviewed token is, whether
// that Pod may have a policy now and which, and whether an acknowledgement is
// for the policy in force. The shell (./server.ts) does the I/O.
import type { V1Pod } from "@kubernetes/client-node";
import { z } from "zod";
import { API_VERSION, SANDBOX_KIND } from "../api/group.js";
import type { Sandbox } from "../api/sandbox.js";
import {
  POD_NAME_EXTRA,
  POD_UID_EXTRA,
  POLICY_AUDIENCE,
  type PolicyMessage,
  policyHash,
} from "./contract.js";

/** The Pod a projected token is bound to, as the apiserver vouched for it. */
export interface PodIdentity {
  namespace: string;
  serviceAccount: string;
  podName: string;
  podUid: string;
}

/** A refusal: HTTP status, a stable code, and words for the sidecar's log. */
export interface Refusal {
  status: 401 | 403 | 404 | 409 | 429;
  code: string;
  message: string;
}

export interface TokenReviewStatus {
  authenticated?: boolean;
  audiences?: string[];
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
  error?: string;
}

const SA_USER = /^system:serviceaccount:([a-z0-9]([-a-z0-9]*[a-z0-9])?):([^:]+)$/;

/**
 * The Pod behind a TokenReview answer, or why the token is not one: it must
 * be authenticated for our audience (the apiserver checks it when the review
 * names the audience; checked again here), belong to a ServiceAccount, and be
 * bound to a Pod (a projected token; a legacy Secret token or a TokenRequest
 * without a bound Pod names none).
 */
export function identityOf(status: TokenReviewStatus | undefined): PodIdentity | Refusal {
  const refuse = (code: string, message: string): Refusal => ({ status: 401, code, message });
  if (!status?.authenticated) return refuse("TOKEN_REJECTED", "the token was not accepted");
  if (!status.audiences?.includes(POLICY_AUDIENCE))
    return refuse("WRONG_AUDIENCE", `the token is not for audience ${POLICY_AUDIENCE}`);
  const m = SA_USER.exec(status.user?.username ?? "");
  if (!m) return refuse("NOT_A_SERVICE_ACCOUNT", "the token is not a ServiceAccount's");
  const podName = status.user?.extra?.[POD_NAME_EXTRA]?.[0];
  const podUid = status.user?.extra?.[POD_UID_EXTRA]?.[0];
  if (!podName || !podUid) return refuse("NOT_POD_BOUND", "the token is not bound to a Pod");
  return { namespace: m[1]!, serviceAccount: m[3]!, podName, podUid };
}

export const isRefusal = (x: unknown): x is Refusal =>
  typeof x === "object" && x !== null && "status" in x && "code" in x;

/**
 * The Sandbox whose policy this Pod may read, or why none: the Pod must be
 * the one the token is bound to (same UID: a replaced Pod's token names the
 * old UID), not on its way out, controlled by a Sandbox of its own name (the
 * pod backend's deterministic name), and that Sandbox's current Pod.
 */
export function authorize(
  id: PodIdentity,
  pod: V1Pod | undefined,
  sandbox: Sandbox | undefined,
): Sandbox | Refusal {
  const forbid = (code: string, message: string): Refusal => ({ status: 403, code, message });
  if (!pod) return forbid("NO_SUCH_POD", `pod ${id.namespace}/${id.podName} is not a sandbox's`);
  if (pod.metadata?.uid !== id.podUid)
    return forbid("POD_REPLACED", `the token's pod ${id.podName} is no longer the current one`);
  if (pod.metadata?.deletionTimestamp)
    return forbid("POD_TERMINATING", `pod ${id.podName} is terminating`);
  const owner = pod.metadata?.ownerReferences?.find(
    (o) => o.controller && o.kind === SANDBOX_KIND && o.apiVersion === API_VERSION,
  );
  if (!owner) return forbid("NOT_A_SANDBOX_POD", `pod ${id.podName} belongs to no Sandbox`);
  if (!sandbox || sandbox.metadata.uid !== owner.uid || sandbox.metadata.name !== id.podName)
    return forbid("NO_SANDBOX", `the Sandbox of pod ${id.podName} is gone`);
  return sandbox;
}

/** What the sidecar is sent: the Sandbox's current policy. */
export function policyMessage(sandbox: Sandbox): PolicyMessage {
  const policy = sandbox.spec.network.egress;
  return {
    generation: sandbox.metadata.generation ?? 0,
    hash: policyHash(policy),
    policy: { defaultAction: policy.defaultAction, rules: policy.rules ?? [] },
  };
}

export const AckSchema = z.strictObject({
  generation: z.number().int().min(0),
  hash: z.string().regex(/^[0-9a-f]{64}$/, "must be a sha256 hex digest"),
});
export type Ack = z.infer<typeof AckSchema>;

/**
 * Whether an acknowledgement is worth recording: only for the policy in
 * force now (an ack for a policy already replaced says nothing about this one),
 * and only when the Pod does not already carry it (no write for a repeat).
 */
export function ackDecision(
  ack: Ack,
  sandbox: Sandbox,
  recorded: string | undefined,
): { record: boolean } | Refusal {
  const current = policyHash(sandbox.spec.network.egress);
  if (ack.hash !== current)
    return {
      status: 409,
      code: "STALE_POLICY",
      message: `acknowledged policy ${ack.hash.slice(0, 12)} is not the one in force (${current.slice(0, 12)})`,
    };
  return { record: recorded !== current };
}
