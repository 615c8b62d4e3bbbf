// API cost from the apiserver's audit log (every verb is audited in the
// benchmark's control plane): requests in a window of the log, by who made
// them and what they did. Lease renewals are left out: leader election and
// node heartbeats cost the same with or without sandboxes.
import { type AuditEvent, completedRequests } from "../../test/support/audit-log.js";

/** Identities the benchmark gives each party (static tokens of the test control plane). */
export const IDENTITIES = {
  controller: "operator-0",
  client: "operator-1",
  observer: "operator-2",
} as const;

const WRITES = new Set(["create", "update", "patch", "delete", "deletecollection"]);

function actor(e: AuditEvent): string {
  for (const [role, user] of Object.entries(IDENTITIES)) if (e.user.username === user) return role;
  // The scheduler, controller-manager and kwok share the admin identity; their user agents differ.
  if (e.user.username === "admin") return e.userAgent?.split("/")[0] ?? "admin";
  return e.user.username.startsWith("system:") ? "apiserver" : e.user.username;
}

export interface Cost {
  /** "actor verb resource[/subresource] [(HTTP code when refused)]" -> requests per sandbox. */
  perSandbox: Record<string, number>;
  /** actor -> verb -> requests per sandbox. */
  byActorVerb: Record<string, Record<string, number>>;
  totalPerSandbox: number;
}

export async function lifecycleCost(path: string, from: number, sandboxes: number): Promise<Cost> {
  const counts = new Map<string, number>();
  const byActorVerb: Record<string, Record<string, number>> = {};
  let total = 0;
  for (const e of await completedRequests(path, from)) {
    if (e.objectRef?.resource === "leases") continue;
    const who = actor(e);
    if (who === "observer") continue; // the benchmark's own watches
    const r = e.objectRef ?? {};
    // Refused requests (a 409 from a stale precondition, say) still cost the server a round trip.
    const code = e.responseStatus?.code ?? 200;
    const refused = code >= 400 ? ` (${code})` : "";
    const key = `${who} ${e.verb} ${r.resource ?? "-"}${r.subresource ? `/${r.subresource}` : ""}${refused}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    byActorVerb[who] ??= {};
    byActorVerb[who][e.verb] = (byActorVerb[who][e.verb] ?? 0) + 1;
    total++;
  }
  const per = (n: number) => Number((n / sandboxes).toFixed(3));
  for (const verbs of Object.values(byActorVerb))
    for (const verb of Object.keys(verbs)) verbs[verb] = per(verbs[verb]!);
  return {
    perSandbox: Object.fromEntries([...counts].sort().map(([k, n]) => [k, per(n)])),
    byActorVerb,
    totalPerSandbox: per(total),
  };
}

/** Writes by the controller in a window, leases aside, with what they were. */
export async function controllerWrites(
  path: string,
  from: number,
): Promise<{ count: number; what: string[] }> {
  const what: string[] = [];
  for (const e of await completedRequests(path, from)) {
    if (e.user.username !== IDENTITIES.controller || !WRITES.has(e.verb)) continue;
    if (e.objectRef?.resource === "leases") continue;
    const r = e.objectRef ?? {};
    what.push(`${e.verb} ${r.resource}${r.subresource ? `/${r.subresource}` : ""} ${r.name}`);
  }
  return { count: what.length, what: what.slice(0, 20) };
}
