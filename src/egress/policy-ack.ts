// The policy file's acknowledgement, as the egress contract states it: after
// every load of its policy file, a sidecar started with --policy-ack-file
// (contract.ts, POLICY_ACK_FILE) writes one JSON line naming the sha256 of the
// exact bytes it read, and whether it put them in force.
// native/egress/internal/sidecar/ack.go writes it.
//
// The digest is of the file's bytes, not the pod channel's policyHash (the
// sha256 of a canonical JSON form, src/policy-server/contract.ts): the file
// is the one thing both sides hold, byte for byte, so the sidecar needs no
// agreement on a canonical form to name what it read, and a file in any
// format (YAML too) has a digest.
import { createHash } from "node:crypto";
import { z } from "zod";

export const PolicyAckRecordSchema = z.object({
  /** Hex sha256 of the policy file's bytes as read; "" when it could not be read. */
  sha256: z.string().regex(/^([0-9a-f]{64})?$/),
  /** True: in force. False: refused (egress denied until a valid policy arrives); `error` says why. */
  applied: z.boolean(),
  error: z.string().optional(),
});
export type PolicyAckRecord = z.infer<typeof PolicyAckRecordSchema>;

/** A policy file's identity in the acknowledgement. */
export function policyFileDigest(text: string | Uint8Array): string {
  return createHash("sha256").update(text).digest("hex");
}

/**
 * Whether a record answers for the policy whose digest is `digest`: it names
 * those bytes (applied or refused), or says the file could not be read at all
 * (sha256 ""), which no newer policy changes until the sidecar reads again.
 */
export function ackAnswers(record: PolicyAckRecord | undefined, digest: string): boolean {
  return record?.sha256 === digest || record?.sha256 === "";
}

/**
 * The record in a file's text, or undefined: empty (not written yet) or torn
 * (read while the sidecar rewrites it in place; its write's own inotify event
 * brings a read of the whole record).
 */
export function parsePolicyAck(text: string): PolicyAckRecord | undefined {
  if (!text.trim()) return undefined;
  try {
    const parsed = PolicyAckRecordSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
