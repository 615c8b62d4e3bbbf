// A Sandbox from the informer cache (raw: possibly invalid) as the idle
// check reads it. Unreadable fields read as "nothing to watch", never as idle.
import { ConditionType } from "../api/conditions.js";
import { IdleMark } from "../api/idle.js";
import { parseDuration } from "../api/workspace.js";
import type { IdleView } from "./decide.js";
import type { IdleSubject } from "./suspender.js";

interface RawSandbox {
  metadata?: {
    namespace?: string;
    name?: string;
    uid?: string;
    deletionTimestamp?: unknown;
    annotations?: Record<string, string>;
  };
  spec?: { suspended?: unknown; idleTimeout?: unknown; backend?: unknown };
  status?: {
    phase?: unknown;
    conditions?: { type?: unknown; status?: unknown; lastTransitionTime?: unknown }[];
  };
}

export function idleViewOf(raw: unknown): IdleView {
  const s = (raw ?? {}) as RawSandbox;
  const ready = Array.isArray(s.status?.conditions)
    ? s.status.conditions.find((c) => c?.type === ConditionType.Ready)
    : undefined;
  const since = ready?.lastTransitionTime;
  const sinceMs =
    since instanceof Date ? since.getTime() : typeof since === "string" ? Date.parse(since) : NaN;
  const timeout =
    typeof s.spec?.idleTimeout === "string" ? parseDuration(s.spec.idleTimeout) : undefined;
  return {
    idleTimeoutMs: timeout,
    suspended: s.spec?.suspended === true,
    idleSuspended: s.metadata?.annotations?.[IdleMark.annotation] === IdleMark.value,
    deleting: !!s.metadata?.deletionTimestamp,
    serving: s.status?.phase === "Running" && ready?.status === "True",
    readySinceMs: Number.isFinite(sinceMs) ? sinceMs : undefined,
  };
}

export function idleSubjectOf(raw: unknown): IdleSubject | undefined {
  if (!raw) return undefined;
  const s = raw as RawSandbox & IdleSubject["sandbox"];
  return { view: idleViewOf(raw), sandbox: s };
}
