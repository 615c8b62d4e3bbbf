// What both backends agree on about the in-sandbox agent (docs/agent-protocol.md,
// "Injection"): where its binary sits inside the workload container, and how a
// sandbox's credential is made.
import { createHash, randomBytes } from "node:crypto";

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
