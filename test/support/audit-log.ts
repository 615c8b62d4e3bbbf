// Reading the apiserver's audit log (JSON lines, one event per request stage):
// what the server saw, not what a client thinks it sent. Shared by the tests
// (through audit.ts) and the scale benchmark, which reads a window of it.
import { createReadStream, statSync } from "node:fs";
import { createInterface } from "node:readline";

export interface AuditEvent {
  stage: string;
  verb: string;
  user: { username: string };
  userAgent?: string;
  objectRef?: {
    resource?: string;
    subresource?: string;
    namespace?: string;
    name?: string;
    apiGroup?: string;
  };
  responseStatus?: { code?: number };
  /** metav1.MicroTime (six fractional digits, UTC): compares as a string. */
  requestReceivedTimestamp?: string;
}

/** Current end of the log, to read only what comes after it. */
export function auditOffset(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** Completed requests logged from byte `from` on (streamed: a benchmark's log is large). */
export async function completedRequests(path: string, from = 0): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  const lines = createInterface({ input: createReadStream(path, { start: from }) });
  for await (const line of lines) {
    if (!line) continue;
    const e = JSON.parse(line) as AuditEvent;
    if (e.stage === "ResponseComplete") out.push(e);
  }
  return out;
}
