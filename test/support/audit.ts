// Counting API writes through the apiserver's audit log (see audit-log.ts) of
// the control plane the integration tests share.
import { inject } from "vitest";
import { type AuditEvent, completedRequests } from "./audit-log.js";

/**
 * Writes (create/update/patch/delete) made by `user`, optionally only in one
 * namespace or on one resource. Lease renewals are not counted: they are the
 * cost of leader election, paid whether or not any sandbox exists.
 */
export async function writesBy(
  user: string,
  namespace?: string,
  resource?: string,
): Promise<number> {
  return (await writes(user, namespace, resource)).length;
}

/** The same writes as "verb resource/subresource namespace/name: count" lines, for failure messages. */
export async function describeWrites(user: string, namespace?: string): Promise<string> {
  const counts = new Map<string, number>();
  for (const { verb, objectRef: r = {} } of await writes(user, namespace)) {
    const key = `${verb} ${r.resource}${r.subresource ? `/${r.subresource}` : ""} ${r.namespace}/${r.name}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => `${k}: ${n}`).join("\n");
}

/**
 * Writes by `user` the apiserver received at or after `since` (a MicroTime,
 * e.g. a Lease's acquireTime), as "verb resource namespace/name (HTTP code)" lines.
 */
export async function writesReceivedSince(
  user: string,
  since: string,
  namespace?: string,
): Promise<string[]> {
  return (await writes(user, namespace))
    .filter((e) => (e.requestReceivedTimestamp ?? "") >= since)
    .map(
      ({ verb, objectRef: r = {}, responseStatus, requestReceivedTimestamp }) =>
        `${requestReceivedTimestamp} ${verb} ${r.resource}${r.subresource ? `/${r.subresource}` : ""} ${r.namespace}/${r.name} (HTTP ${responseStatus?.code})`,
    );
}

/**
 * Writes by `user` in `namespace` the apiserver received at or after `since`
 * (a MicroTime), as the audit log has them: verb, object, response code.
 */
export async function writesSince(
  user: string,
  since: string,
  namespace?: string,
): Promise<AuditEvent[]> {
  return (await writes(user, namespace)).filter((e) => (e.requestReceivedTimestamp ?? "") >= since);
}

const WRITE_VERBS = new Set(["create", "update", "patch", "delete", "deletecollection"]);

async function writes(user: string, namespace?: string, resource?: string): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  for (const e of await completedRequests(inject("auditLogPath"))) {
    if (e.user.username !== user) continue;
    // The audit policy also records some reads (pods/log): those are not writes.
    if (!WRITE_VERBS.has(e.verb)) continue;
    if (e.objectRef?.resource === "leases") continue;
    if (namespace && e.objectRef?.namespace !== namespace) continue;
    if (resource && e.objectRef?.resource !== resource) continue;
    out.push(e);
  }
  return out;
}
