// The Sandbox resource as the controller sees it: spec and status come from the
// zod schemas; metadata is the standard ObjectMeta.
import type { V1ObjectMeta } from "@kubernetes/client-node";
import { z } from "zod";
import { API_VERSION, SANDBOX_KIND } from "./group.js";
import { SandboxSpecSchema } from "./sandbox-spec.js";
import { SandboxStatusSchema } from "./sandbox-status.js";
import { DNS_1035_LABEL_PATTERN, regex } from "./schema-helpers.js";

/**
 * A Sandbox's name names its Pod and Service too, so it must be a valid Service
 * name: an RFC 1035 label of at most 63 characters.
 */
export const SANDBOX_NAME_MAX_LENGTH = 63;
export const SANDBOX_NAME_PATTERN = DNS_1035_LABEL_PATTERN;

export const SandboxSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(SANDBOX_KIND),
  metadata: z.custom<V1ObjectMeta>((m) => typeof m === "object" && m !== null),
  spec: SandboxSpecSchema,
  status: SandboxStatusSchema.optional(),
});

export type Sandbox = z.output<typeof SandboxSchema>;

export function isValidSandboxName(name: string): boolean {
  return name.length <= SANDBOX_NAME_MAX_LENGTH && regex(SANDBOX_NAME_PATTERN).test(name);
}
