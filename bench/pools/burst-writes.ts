// Every API write of a burst, as the apiserver's audit log has them: sorted by
// what they were for (the claims' own path, the pool's refill, Events), with
// conflicts (409) counted apart, so a burst's result says how many writes a
// warm claim cost and which.
import { type AuditEvent, completedRequests } from "../../test/support/audit-log.js";

const WRITE_VERBS = new Set(["create", "update", "patch", "delete", "deletecollection"]);

export interface BurstWrites {
  /** Writes in the window, by "verb resource[/subresource]" and what they were for. */
  byKind: Record<string, number>;
  /** The claims' own path (claim create, binding, claimed sandbox's status, claim status), per claim. */
  claimPathPerClaim: number;
  /** Every write in the window, per claim (refill and Events included). */
  allPerClaim: number;
  /** Of them, refused with 409 Conflict (retried). */
  conflicts: number;
}

/**
 * Writes in `namespace` logged from byte `fromOffset` of the audit log and
 * received before `untilIso` (a MicroTime: the burst's last claim Ready).
 * `claimed`: the sandboxes the burst's claims were given; `claims`: their names.
 */
export async function burstWrites(opts: {
  auditLogPath: string;
  fromOffset: number;
  untilIso: string;
  namespace: string;
  claims: ReadonlySet<string>;
  claimed: ReadonlySet<string>;
}): Promise<BurstWrites> {
  const byKind: Record<string, number> = {};
  let claimPath = 0;
  let all = 0;
  let conflicts = 0;
  const events = await completedRequests(opts.auditLogPath, opts.fromOffset);
  for (const e of events) {
    if (!WRITE_VERBS.has(e.verb)) continue;
    const r = e.objectRef ?? {};
    if (r.namespace !== opts.namespace || r.resource === "leases") continue;
    if ((e.requestReceivedTimestamp ?? "") > opts.untilIso) continue;
    const purpose = purposeOf(e, opts.claims, opts.claimed);
    const kind = `${e.verb} ${r.resource}${r.subresource ? `/${r.subresource}` : ""} (${purpose})`;
    byKind[kind] = (byKind[kind] ?? 0) + 1;
    all++;
    if (purpose === "claim path") claimPath++;
    if (e.responseStatus?.code === 409) conflicts++;
  }
  const n = Math.max(1, opts.claims.size);
  const round = (x: number) => Number((x / n).toFixed(2));
  return {
    byKind: Object.fromEntries(Object.entries(byKind).sort(([, a], [, b]) => b - a)),
    claimPathPerClaim: round(claimPath),
    allPerClaim: round(all),
    conflicts,
  };
}

function purposeOf(e: AuditEvent, claims: ReadonlySet<string>, claimed: ReadonlySet<string>) {
  const r = e.objectRef ?? {};
  if (r.resource === "events") return "event";
  if (r.resource === "sandboxclaims") return claims.has(r.name ?? "") ? "claim path" : "other";
  if (r.resource === "sandboxes") {
    // A create has no name in its objectRef on older apiservers: a create here is a refill's.
    if (e.verb === "create") return "refill";
    return claimed.has(r.name ?? "") ? "claim path" : "refill";
  }
  if (r.resource === "sandboxwarmpools") return "pool";
  return "other";
}
