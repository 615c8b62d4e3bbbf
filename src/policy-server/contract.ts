// What the controller's policy endpoint and the egress sidecar agree on: the
// port, the paths, the token's audience and lifetime, where the sidecar finds
// its credential and the CA, and the Pod annotations that carry the policy's
// digest and the sidecar's acknowledgement. native/egress/internal/sidecar/
// channel.go speaks the other side.
import { createHash } from "node:crypto";
import { GROUP } from "../api/group.js";
import type { EgressPolicy } from "../api/sandbox-spec.js";
import { policyDocument } from "../egress/contract.js";

/** The operator's port for the policy endpoint (HTTPS). */
export const POLICY_PORT = 15090;
export const POLICY_PATH = "/v1/policy";
export const APPLIED_PATH = "/v1/policy/applied";
/**
 * The projected token's audience: a token minted for this audience is
 * accepted nowhere else (the apiserver refuses it), and no other token of the
 * Pod's ServiceAccount is accepted here.
 */
export const POLICY_AUDIENCE = `sandbox-egress.${GROUP}`;
/** The kubelet rotates the token at 80% of this; the minimum the apiserver allows is 600. */
export const POLICY_TOKEN_SECONDS = 600;
/** Where the sidecar container (and only it) mounts the token. */
export const POLICY_TOKEN_DIR = "/var/run/secrets/sandbox-egress";
export const POLICY_TOKEN_FILE = `${POLICY_TOKEN_DIR}/token`;
/** The CA bundle's file name in the sidecar's policy volume (a downward-API item). */
export const POLICY_CA_FILE_NAME = "policy-ca.crt";

/** The CA bundle the sidecar verifies the endpoint with (public: its integrity comes from the Pod spec). */
export const POLICY_CA_ANNOTATION = `${GROUP}/egress-policy-ca`;
/** The digest of the policy the sidecar acknowledged having applied, written by the endpoint. */
export const POLICY_APPLIED_ANNOTATION = `${GROUP}/egress-policy-applied`;

/** TokenReview user.extra keys naming the Pod a projected token is bound to. */
export const POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name";
export const POD_UID_EXTRA = "authentication.kubernetes.io/pod-uid";

/** A policy's identity on the wire and in the acknowledgement: sha256 of the policy document, keys sorted. */
export function policyHash(policy: EgressPolicy): string {
  return createHash("sha256")
    .update(canonical(JSON.parse(policyDocument(policy))))
    .digest("hex");
}

/**
 * JSON with every object's keys sorted. The endpoint hashes the Sandbox as
 * the apiserver sent it (keys in the apiserver's order), the pod backend the
 * Sandbox as its schema parsed it (keys in the schema's order): a rule with
 * `ports` came out in two orders, the acknowledgement never matched, and a
 * warm claim with such a rule stayed Bound (found by bench/pools).
 */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
}

/** One line of the watch stream (newline-delimited JSON). */
export interface PolicyMessage {
  /** The Sandbox's metadata.generation the policy was read at (for logs and acks). */
  generation: number;
  hash: string;
  policy: { defaultAction: "allow" | "deny"; rules: EgressPolicy["rules"] };
}
