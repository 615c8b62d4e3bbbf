// When a dead egress sidecar may be started again. Its lockdown outlives it (the
// rules stay in the network namespace the workload still holds, with no way
// out), so restarting is about giving egress back, not about closing a hole:
// the first restart is immediate, a sidecar that keeps dying is restarted with
// growing delays, as the kubelet does with a crash-looping container.
import type { ContainerInspectInfo } from "dockerode";
import { type BackoffOptions, backoffDelay } from "../../controller/backoff.js";

/** Delays between restarts of a sidecar that keeps dying: 1 s, 2 s, 4 s, ... at most a minute. */
export const SIDECAR_RESTART_BACKOFF: BackoffOptions = { baseMs: 1000, maxMs: 60_000 };
/** A sidecar that ran this long before it died was healthy: the count starts over. */
export const SIDECAR_STABLE_MS = 60_000;

export interface RestartHistory {
  /** Restarts since the sidecar last ran stably. */
  restarts: number;
  /** When the last restart was made (ms since the epoch). */
  lastAt: number;
}

export interface RestartPlan {
  /** 1 for the first restart after a stable run. */
  attempt: number;
  /** How long to wait before it (0: now). */
  waitMs: number;
}

/** Pure: the next restart of a sidecar that died after running `ranForMs`. */
export function planRestart(
  history: RestartHistory | undefined,
  ranForMs: number,
  nowMs: number,
  opts: BackoffOptions = SIDECAR_RESTART_BACKOFF,
): RestartPlan {
  if (!history || ranForMs >= SIDECAR_STABLE_MS) return { attempt: 1, waitMs: 0 };
  const dueAt = history.lastAt + backoffDelay(history.restarts - 1, opts);
  return { attempt: history.restarts + 1, waitMs: Math.max(0, dueAt - nowMs) };
}

/** Restart history per sandbox (by UID), in memory: after a controller restart the next restart is immediate. */
export class SidecarRestarts {
  private readonly history = new Map<string, RestartHistory>();

  constructor(
    private readonly opts: BackoffOptions = SIDECAR_RESTART_BACKOFF,
    private readonly now: () => number = Date.now,
  ) {}

  plan(uid: string, sidecar: ContainerInspectInfo): RestartPlan {
    const { StartedAt, FinishedAt } = sidecar.State;
    const ranFor = Date.parse(FinishedAt) - Date.parse(StartedAt);
    return planRestart(
      this.history.get(uid),
      Number.isNaN(ranFor) ? 0 : ranFor,
      this.now(),
      this.opts,
    );
  }

  /** A restart (number `attempt`) is being made now. */
  note(uid: string, attempt: number): void {
    this.history.set(uid, { restarts: attempt, lastAt: this.now() });
  }

  forget(uid: string): void {
    this.history.delete(uid);
  }
}
