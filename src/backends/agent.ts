// What both backends agree on about the in-sandbox agent (docs/agent-protocol.md,
// "Injection"): where its binary sits inside the workload container, and how a
// sandbox's credential is made.
import { createHash, createHmac, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";

/** Mounted (read-only for the workload) in every workload container: the agent's binary. */
export const AGENT_DIR = "/.sandbox";
export const AGENT_PATH = `${AGENT_DIR}/sandbox-agent`;
/** Where the operator image carries the agent (the backends copy it from there). */
export const AGENT_IMAGE_PATH = "/app/dist/agent/sandbox-agent";

/** A fresh credential: 32 random bytes, never reused, never shared between sandboxes. */
export function newAgentToken(): string {
  return randomBytes(32).toString("base64url");
}

/** The credential's SHA-256 in hex: all the agent needs to check it (`--token-sha256-file`). */
export function agentTokenDigest(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/**
 * The credential of a sandbox reached by the gateway: derived from a key the
 * operator and the gateway share (the chart's agent-key Secret) and the
 * sandbox's UID, so the gateway computes it without reading any Secret (its
 * RBAC holds no `secrets` verb) and a re-created sandbox of the same name gets
 * another one. Only the digest enters the Pod, as with a random credential.
 */
export function deriveAgentToken(key: Buffer, sandboxUid: string): string {
  return createHmac("sha256", key).update(`sandbox-agent/v1/${sandboxUid}`).digest("base64url");
}

/** Shortest agent key accepted (bytes): an HMAC key shorter than its output weakens it. */
export const MIN_AGENT_KEY_BYTES = 32;

export class AgentKeyError extends Error {
  override name = "AgentKeyError";
}

/** The shared agent key from its file (the mounted Secret's key), checked for length. */
export function readAgentKey(path: string): Buffer {
  let key: Buffer;
  try {
    key = readFileSync(path);
  } catch (err) {
    throw new AgentKeyError(`cannot read the agent key ${path}: ${(err as Error).message}`);
  }
  if (key.length < MIN_AGENT_KEY_BYTES)
    throw new AgentKeyError(
      `the agent key ${path} has ${key.length} bytes; at least ${MIN_AGENT_KEY_BYTES} are needed`,
    );
  return key;
}
