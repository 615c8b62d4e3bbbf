// Scoped tokens: a credential that opens one incarnation of one sandbox for a
// set of verbs until an expiry, verifiable by every gateway replica without
// shared state (Ed25519 signatures; the keys come from a Secret mounted as
// files, see keys.ts).
//
// Format: "sgw1.<kid>.<claims, base64url JSON>.<signature, base64url>", the
// signature covering "sgw1.<kid>.<claims>". Not a JWT: no algorithm field to
// confuse (the algorithm is fixed by the prefix), no header to parse before
// the signature is checked. The claims name the sandbox's UID, so a token for
// a sandbox that was deleted and re-created under the same name opens nothing.
import { type KeyObject, randomBytes, sign, verify } from "node:crypto";
import { z } from "zod";
import { ScopedVerbSchema } from "./verbs.js";

export const TOKEN_PREFIX = "sgw1";
/** Longest lifetime a scoped token may be minted with (24 h). */
export const MAX_TOKEN_TTL_SECONDS = 86_400;
/** A token is refused this long before its expiry by a replica whose clock runs ahead; accepted no longer after. */
export const CLOCK_SKEW_SECONDS = 30;
/** Upper bound on a token's length before anything is decoded (bounded work for garbage). */
export const MAX_TOKEN_LENGTH = 2048;

export const ClaimsSchema = z.strictObject({
  /** Sandbox namespace, name and UID. */
  ns: z.string().min(1).max(63),
  name: z.string().min(1).max(253),
  uid: z.string().min(1).max(64),
  verbs: z.array(ScopedVerbSchema).min(1).max(8),
  /** Issued at and expiry, Unix seconds. */
  iat: z.int(),
  exp: z.int(),
  /** Who minted it (for the audit log). */
  sub: z.string().max(512),
  /** Unique ID (audit). */
  jti: z.string().max(64),
});
export type Claims = z.infer<typeof ClaimsSchema>;

/** Why a token was refused: each maps to 401 (the credential is not valid). */
export class TokenError extends Error {
  override name = "TokenError";
  constructor(
    readonly reason: "malformed" | "unknown-key" | "bad-signature" | "expired" | "not-yet-valid",
    message: string,
  ) {
    super(message);
  }
}

export interface SigningKey {
  kid: string;
  privateKey: KeyObject;
}

export function mintToken(
  key: SigningKey,
  claims: Omit<Claims, "iat" | "jti"> & { iat?: number },
): string {
  const full: Claims = ClaimsSchema.parse({
    ...claims,
    iat: claims.iat ?? Math.floor(Date.now() / 1000),
    jti: randomBytes(12).toString("base64url"),
  });
  const signed = `${TOKEN_PREFIX}.${key.kid}.${Buffer.from(JSON.stringify(full)).toString("base64url")}`;
  return `${signed}.${sign(null, Buffer.from(signed), key.privateKey).toString("base64url")}`;
}

export function looksScoped(token: string): boolean {
  return token.startsWith(`${TOKEN_PREFIX}.`);
}

const B64URL = /^[A-Za-z0-9_-]+$/;

/** Verifies a token against the known public keys (by kid); throws TokenError. */
export function verifyToken(
  token: string,
  publicKeys: ReadonlyMap<string, KeyObject>,
  nowSeconds = Math.floor(Date.now() / 1000),
): Claims {
  if (token.length > MAX_TOKEN_LENGTH) throw new TokenError("malformed", "token too long");
  const parts = token.split(".");
  if (
    parts.length !== 4 ||
    parts[0] !== TOKEN_PREFIX ||
    !parts.slice(1).every((p) => B64URL.test(p))
  )
    throw new TokenError("malformed", "not a scoped token (sgw1.<kid>.<claims>.<signature>)");
  const [, kid, body, sig] = parts as [string, string, string, string];
  const key = publicKeys.get(kid);
  if (!key) throw new TokenError("unknown-key", `token signed with an unknown key (${kid})`);
  const ok = verify(
    null,
    Buffer.from(`${TOKEN_PREFIX}.${kid}.${body}`),
    key,
    Buffer.from(sig, "base64url"),
  );
  if (!ok) throw new TokenError("bad-signature", "token signature does not verify");
  // Only signed bytes are parsed from here on.
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body, "base64url").toString("utf8"));
  } catch {
    throw new TokenError("malformed", "token claims are not JSON");
  }
  const claims = ClaimsSchema.safeParse(parsed);
  if (!claims.success) throw new TokenError("malformed", "token claims do not match the schema");
  if (claims.data.exp <= nowSeconds) throw new TokenError("expired", "token expired");
  if (claims.data.iat > nowSeconds + CLOCK_SKEW_SECONDS)
    throw new TokenError("not-yet-valid", "token issued in the future");
  return claims.data;
}
