// The gateway's audit line: one per call, who did what to which sandbox with
// what result and how many bytes. It is the one line logged per request, so it
// is rendered here by hand rather than by pino's generic serializer (see
// preformattedLine); the shape is the same `{"audit":{...}}` field either way,
// and audit.test.ts pins that it parses to what pino would have written.
import { type Logger, preformattedLine } from "../observability/logger.js";

/** One call's audit record. Absent fields are left out of the line. */
export interface AuditRecord {
  id: string;
  /** The principal, or "anonymous" before a credential was accepted. */
  who: string;
  /** `namespace/name`. */
  sandbox?: string | undefined;
  /** Port routes only. */
  port?: number | undefined;
  verb: string;
  method?: string | undefined;
  /** The request path without its query (a query may carry a token). */
  path: string;
  status: number;
  result: string;
  bytesIn: number;
  bytesOut: number;
  ms: number;
  remote?: string | undefined;
}

/** The message every audit line carries, to find them among other lines. */
export const AUDIT_MESSAGE = "gateway call";

/** Writes audit lines to the logger's destination (nothing while info is disabled). */
export function auditWriter(log: Logger): (r: AuditRecord) => void {
  const write = preformattedLine(log, "info", AUDIT_MESSAGE);
  return (r) => write(auditFields(r));
}

/** `"audit":{...}`: the record as JSON, keys in a fixed order, absent ones omitted. */
export function auditFields(r: AuditRecord): string {
  let s = `"audit":{"id":${str(r.id)},"who":${str(r.who)}`;
  if (r.sandbox !== undefined) s += `,"sandbox":${str(r.sandbox)}`;
  if (r.port !== undefined) s += `,"port":${num(r.port)}`;
  s += `,"verb":${str(r.verb)}`;
  if (r.method !== undefined) s += `,"method":${str(r.method)}`;
  s += `,"path":${str(r.path)},"status":${num(r.status)},"result":${str(r.result)}`;
  s += `,"bytesIn":${num(r.bytesIn)},"bytesOut":${num(r.bytesOut)},"ms":${num(r.ms)}`;
  if (r.remote !== undefined) s += `,"remote":${str(r.remote)}`;
  return `${s}}`;
}

/**
 * A string as JSON. Most values (IDs, verbs, plain paths) need no escaping:
 * they are quoted as they are; anything else goes through JSON.stringify,
 * so a client's quote, backslash, control character or lone surrogate in a
 * path cannot break or forge the line.
 */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
function str(v: string): string {
  return PLAIN.test(v) ? `"${v}"` : JSON.stringify(v);
}

/** A number as JSON (NaN and infinities are null, as JSON.stringify writes them). */
function num(v: number): string {
  return Number.isFinite(v) ? String(v) : "null";
}
