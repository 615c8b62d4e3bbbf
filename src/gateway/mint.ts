// The mint endpoint's request and answer, as zod schemas (validated here and
// published in the OpenAPI document).
import { z } from "zod";
import { ScopedVerbSchema } from "./verbs.js";

export const MintRequestSchema = z.strictObject({
  verbs: z
    .array(ScopedVerbSchema)
    .min(1)
    .max(8)
    .describe("What the token may do: exec, files, connect, logs, get"),
  ttlSeconds: z
    .int()
    .min(1)
    .describe("Lifetime in seconds (at most the gateway's --max-token-ttl)"),
});
export type MintRequest = z.infer<typeof MintRequestSchema>;

export const MintResponseSchema = z.object({
  token: z.string().describe("Bearer token for this gateway: Authorization: Bearer <token>"),
  expiresAt: z.string().describe("RFC 3339"),
  verbs: z.array(ScopedVerbSchema),
  sandbox: z.object({ namespace: z.string(), name: z.string(), uid: z.string() }),
});
