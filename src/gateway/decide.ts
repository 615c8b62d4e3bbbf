// Pure authorization decisions, table-tested in decide.test.ts. The shell
// (auth.ts, server.ts) gathers the facts; these say yes or no and why.
import type { Claims } from "./tokens.js";
import { SCOPED_VERBS, type Verb } from "./verbs.js";

export type Decision =
  | { allow: true }
  | { allow: false; status: number; code: string; message: string };

const ALLOW: Decision = { allow: true };

/** A scoped token against the sandbox and verb asked for (before the sandbox is looked up). */
export function scopedTokenAllows(claims: Claims, ns: string, name: string, verb: Verb): Decision {
  if (claims.ns !== ns || claims.name !== name)
    return {
      allow: false,
      status: 403,
      code: "WRONG_SANDBOX",
      message: "the token is scoped to another sandbox",
    };
  if (
    !(SCOPED_VERBS as readonly string[]).includes(verb) ||
    !(claims.verbs as string[]).includes(verb)
  )
    return {
      allow: false,
      status: 403,
      code: "VERB_NOT_GRANTED",
      message: `the token does not grant ${verb}`,
    };
  return ALLOW;
}

export interface SandboxFacts {
  uid: string;
  terminating: boolean;
}

/** The sandbox as found, against the credential (a scoped token names one incarnation). */
export function sandboxAdmits(
  sandbox: SandboxFacts | undefined,
  tokenUid: string | undefined,
  ns: string,
  name: string,
): Decision {
  if (!sandbox)
    return {
      allow: false,
      status: 404,
      code: "SANDBOX_NOT_FOUND",
      message: `sandbox ${ns}/${name} not found`,
    };
  if (tokenUid !== undefined && tokenUid !== sandbox.uid)
    return {
      allow: false,
      status: 403,
      code: "SANDBOX_RECREATED",
      message: "the token was issued for an earlier sandbox of this name",
    };
  if (sandbox.terminating)
    return {
      allow: false,
      status: 409,
      code: "SANDBOX_TERMINATING",
      message: `sandbox ${ns}/${name} is being deleted`,
    };
  return ALLOW;
}

export interface MintRequest {
  verbs: string[];
  ttlSeconds: number;
}

/** What a minted token may carry: never more than the minter holds (checked by the shell with SARs). */
export function mintable(req: MintRequest, maxTtlSeconds: number): Decision {
  const bad = req.verbs.filter((v) => !(SCOPED_VERBS as readonly string[]).includes(v));
  if (bad.length)
    return {
      allow: false,
      status: 400,
      code: "BAD_REQUEST",
      message: `verbs: unknown ${bad.join(", ")} (allowed: ${SCOPED_VERBS.join(", ")})`,
    };
  if (!req.verbs.length)
    return { allow: false, status: 400, code: "BAD_REQUEST", message: "verbs: at least one" };
  if (!Number.isInteger(req.ttlSeconds) || req.ttlSeconds < 1 || req.ttlSeconds > maxTtlSeconds)
    return {
      allow: false,
      status: 400,
      code: "BAD_REQUEST",
      message: `ttlSeconds: 1-${maxTtlSeconds}`,
    };
  return ALLOW;
}
