// When to look at a sandbox's activity and when to suspend it, as a pure
// function (table-tested in decide.test.ts); suspender.ts performs it.
//
// The cost model (docs/idle.md): nothing is written while a sandbox is used,
// and its activity is read once per idle period. The controller knows when
// the sandbox became Ready; the first look is due idleTimeout after that.
// The agent then says how long it has been unused (idleMs, on its own
// monotonic clock); a sandbox used since is looked at again when it could
// first have become idle (idleTimeout − idleMs later). So a sandbox in
// constant use costs one read per idleTimeout, an idle one one read and one
// patch, a suspended one nothing.

/** What the idle check needs of a Sandbox (read from the informer cache). */
export interface IdleView {
  /** spec.idleTimeout in ms; undefined: never suspended for idleness. */
  idleTimeoutMs: number | undefined;
  /** spec.suspended. */
  suspended: boolean;
  /** The operator's idle-suspension annotation is present. */
  idleSuspended: boolean;
  /** metadata.deletionTimestamp is set. */
  deleting: boolean;
  /** status.phase is Running and Ready is True. */
  serving: boolean;
  /** When Ready last became True (ms since the epoch); undefined when unknown. */
  readySinceMs: number | undefined;
}

/** The agent's answer to the activity read (or why there was none). */
export type ActivityReading = { idleMs: number; inFlight: number } | { error: string };

export interface IdleMemory {
  /** The next look decided earlier (ms since the epoch); lost on restart, which only costs one early read. */
  nextCheckAtMs?: number;
}

/** After an unanswered read, look again this soon (or at idleTimeout, if shorter). */
export const UNREACHABLE_RETRY_MS = 30_000;

export type IdleDecision =
  /** Nothing to watch (no idleTimeout, suspended, not serving, being deleted): forget the timer. */
  | { kind: "none" }
  /** Look again at this time (ms since the epoch). */
  | { kind: "wait"; atMs: number }
  /** Read the agent's activity now, then decide again with it. */
  | { kind: "read" }
  /** Unused for idleTimeout: suspend it. */
  | { kind: "suspend"; idleMs: number }
  /** The idle annotation outlived a resume done by hand (kubectl edit): remove it. */
  | { kind: "clearAnnotation" };

export function decideIdle(
  view: IdleView,
  memory: IdleMemory,
  reading: ActivityReading | undefined,
  nowMs: number,
): IdleDecision {
  if (view.deleting) return { kind: "none" };
  // A stale mark would make a later manual suspension look like ours (woken by any call).
  if (!view.suspended && view.idleSuspended) return { kind: "clearAnnotation" };
  const timeout = view.idleTimeoutMs;
  if (timeout === undefined || view.suspended || !view.serving) return { kind: "none" };

  if (reading === undefined) {
    const first = (view.readySinceMs ?? nowMs) + timeout;
    const due = Math.max(first, memory.nextCheckAtMs ?? first);
    return nowMs < due ? { kind: "wait", atMs: due } : { kind: "read" };
  }
  // What cannot be read is not known to be idle: never suspend on a failure.
  if ("error" in reading)
    return { kind: "wait", atMs: nowMs + Math.min(timeout, UNREACHABLE_RETRY_MS) };
  // A call in flight is use until it ends; the earliest it could be idle is a full period away.
  if (reading.inFlight > 0) return { kind: "wait", atMs: nowMs + timeout };
  if (reading.idleMs >= timeout) return { kind: "suspend", idleMs: reading.idleMs };
  return { kind: "wait", atMs: nowMs + (timeout - reading.idleMs) };
}
