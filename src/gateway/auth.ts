// Who is calling and may they: Kubernetes bearer tokens through TokenReview,
// authorized by SubjectAccessReview on `sandboxes` with the gateway's custom
// verbs, and scoped tokens verified locally. Fail closed: an apiserver that
// does not answer means no access (503), never a guess. Results are cached
// briefly and in bounded memory, keyed by a digest of the token (the cache
// never holds a credential).
import { createHash } from "node:crypto";
import type * as k8s from "@kubernetes/client-node";
import { GROUP, SANDBOX_PLURAL } from "../api/group.js";
import { rawRequest } from "../controller/raw-request.js";
import { GatewayError, unauthenticated } from "./errors.js";
import type { KeyStore } from "./keys.js";
import { BoundedCache, RateLimiter } from "./limits.js";
import { type Claims, looksScoped, TokenError, verifyToken } from "./tokens.js";

/**
 * Who is calling. `key` names the credential for the limits, `who` for the
 * audit line; both are computed once per credential, and the principal is
 * reused from the caches as is, so a cached call allocates nothing here.
 */
export type Principal =
  | {
      kind: "user";
      username: string;
      uid?: string;
      groups: string[];
      extra?: Record<string, string[]>;
      key: string;
      who: string;
    }
  | { kind: "scoped"; claims: Claims; key: string; who: string };

export function describe(p: Principal): string {
  return p.who;
}

type ScopedPrincipal = Extract<Principal, { kind: "scoped" }>;

function scopedPrincipal(claims: Claims): ScopedPrincipal {
  return {
    kind: "scoped",
    claims,
    key: `jti:${claims.jti}`,
    who: `token:${claims.jti} (by ${claims.sub})`,
  };
}

export interface AuthOptions {
  kubeConfig: k8s.KubeConfig;
  keys: KeyStore;
  /** How long TokenReview and SubjectAccessReview answers are reused (default 10 s). */
  cacheTtlMs?: number;
  /** How many answers are kept (default 10,000 each). */
  cacheEntries?: number;
}

const BEARER = /^Bearer ([^\s]+)$/i;
/** Longest Kubernetes bearer token sent for review. */
const MAX_KUBE_TOKEN_LENGTH = 16_384;

const digest = (s: string) => createHash("sha256").update(s).digest("base64url");

interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
  error?: string;
}

export class Auth {
  private readonly users: BoundedCache<Principal | null>;
  private readonly decisions: BoundedCache<boolean>;
  /** Verified scoped tokens (an Ed25519 verification per request was the gateway's largest cost). */
  private readonly scoped = new BoundedCache<ScopedPrincipal>(10_000, 60_000);
  /**
   * TokenReviews per client address: every unknown token costs the apiserver
   * a review, so a client spraying random tokens is cut off here (429) rather
   * than amplified into the apiserver.
   */
  private readonly reviews = new RateLimiter({ rps: 20, burst: 50 });

  constructor(private readonly opts: AuthOptions) {
    const ttl = opts.cacheTtlMs ?? 10_000;
    const n = opts.cacheEntries ?? 10_000;
    this.users = new BoundedCache(n, ttl);
    this.decisions = new BoundedCache(n, ttl);
  }

  /**
   * The caller from the caches alone, without waiting: a scoped token
   * verified before (and not expired), a Kubernetes token reviewed within
   * the cache's TTL. Undefined when authenticate() must decide (it also
   * gives the refusals): the common call takes no promise, no await.
   */
  cached(authorization: string | undefined): Principal | undefined {
    if (authorization === undefined) return undefined;
    // A cache key was a token that passed BEARER when it was stored: the same
    // string after "Bearer " needs no second look.
    const token = authorization.startsWith("Bearer ")
      ? authorization.slice(7)
      : BEARER.exec(authorization)?.[1];
    if (token === undefined) return undefined;
    if (looksScoped(token)) {
      const hit = this.scoped.get(token);
      return hit && hit.claims.exp > Date.now() / 1000 ? hit : undefined;
    }
    if (token.length > MAX_KUBE_TOKEN_LENGTH) return undefined;
    return this.users.get(digest(token)) ?? undefined;
  }

  /** A cached SubjectAccessReview answer (allowed()'s cache), undefined when none. */
  cachedDecision(
    p: Extract<Principal, { kind: "user" }>,
    ns: string,
    name: string,
    verb: string,
  ): boolean | undefined {
    return this.decisions.get(`${p.key}|${ns}|${name}|${verb}`);
  }

  /** The caller behind an Authorization header; throws GatewayError (401, or 503 when the apiserver fails). */
  async authenticate(authorization: string | undefined, remote = "unknown"): Promise<Principal> {
    const m = BEARER.exec(authorization ?? "");
    if (!m)
      throw unauthenticated(
        authorization
          ? "malformed Authorization header (Bearer <token>)"
          : "no credential (Authorization: Bearer <token>)",
        authorization ? "MALFORMED_CREDENTIAL" : "NO_CREDENTIAL",
      );
    const token = m[1]!;
    if (looksScoped(token)) {
      const hit = this.scoped.get(token);
      // Expiry is checked on every use; a key's removal takes effect within the cache's minute.
      if (hit && hit.claims.exp > Date.now() / 1000) return hit;
      try {
        const principal = scopedPrincipal(verifyToken(token, this.opts.keys.keys.verify));
        this.scoped.set(token, principal);
        return principal;
      } catch (err) {
        if (err instanceof TokenError)
          throw unauthenticated(
            err.message,
            `TOKEN_${err.reason.toUpperCase().replace(/-/g, "_")}`,
          );
        throw err;
      }
    }
    if (token.length > MAX_KUBE_TOKEN_LENGTH)
      throw unauthenticated("credential too long", "MALFORMED_CREDENTIAL");
    const key = digest(token);
    const cached = this.users.get(key);
    if (cached === null) throw unauthenticated("the credential was not accepted", "TOKEN_REJECTED");
    if (cached) return cached;
    if (!this.reviews.take(remote))
      throw new GatewayError(429, "RATE_LIMITED", "too many unknown credentials from this address");
    let status: TokenReviewStatus | undefined;
    try {
      const review = await rawRequest<{ status?: TokenReviewStatus }>(
        this.opts.kubeConfig,
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        {
          body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } },
        },
      );
      status = review.status;
    } catch (err) {
      throw new GatewayError(
        503,
        "AUTH_UNAVAILABLE",
        `cannot review the credential now: ${(err as Error).message}`,
      );
    }
    if (!status?.authenticated || !status.user?.username) {
      this.users.set(key, null);
      throw unauthenticated("the credential was not accepted", "TOKEN_REJECTED");
    }
    const u = status.user;
    const principal: Principal = {
      kind: "user",
      username: u.username!,
      ...(u.uid ? { uid: u.uid } : {}),
      groups: u.groups ?? [],
      ...(u.extra ? { extra: u.extra } : {}),
      key: `user:${key}`,
      who: u.username!,
    };
    this.users.set(key, principal);
    return principal;
  }

  /** SubjectAccessReview: may this user do verb on sandboxes/name in ns? */
  async allowed(
    p: Extract<Principal, { kind: "user" }>,
    ns: string,
    name: string,
    verb: string,
  ): Promise<boolean> {
    const key = `${p.key}|${ns}|${name}|${verb}`;
    const cached = this.decisions.get(key);
    if (cached !== undefined) return cached;
    let allowed: boolean;
    try {
      const review = await rawRequest<{ status?: { allowed?: boolean; denied?: boolean } }>(
        this.opts.kubeConfig,
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        {
          body: {
            apiVersion: "authorization.k8s.io/v1",
            kind: "SubjectAccessReview",
            spec: {
              user: p.username,
              ...(p.uid ? { uid: p.uid } : {}),
              groups: p.groups,
              ...(p.extra ? { extra: p.extra } : {}),
              resourceAttributes: {
                group: GROUP,
                resource: SANDBOX_PLURAL,
                namespace: ns,
                name,
                verb,
              },
            },
          },
        },
      );
      allowed = review.status?.allowed === true && review.status.denied !== true;
    } catch (err) {
      throw new GatewayError(
        503,
        "AUTH_UNAVAILABLE",
        `cannot check authorization now: ${(err as Error).message}`,
      );
    }
    this.decisions.set(key, allowed);
    return allowed;
  }
}
