// Counting API writes through the apiserver's audit log (JSON lines, one event
// per request): what the server saw, not what a client thinks it sent.
import { readFile } from "node:fs/promises";
import { inject } from "vitest";

interface AuditEvent {
  stage: string;
  verb: string;
  user: { username: string };
  objectRef?: { resource?: string; namespace?: string; apiGroup?: string; subresource?: string };
}

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
  const text = await readFile(inject("auditLogPath"), "utf8");
  let count = 0;
  for (const line of text.split("\n")) {
    if (!line) continue;
    const e = JSON.parse(line) as AuditEvent;
    if (e.stage !== "ResponseComplete" || e.user.username !== user) continue;
    if (e.objectRef?.resource === "leases") continue;
    if (namespace && e.objectRef?.namespace !== namespace) continue;
    if (resource && e.objectRef?.resource !== resource) continue;
    count++;
  }
  return count;
}
