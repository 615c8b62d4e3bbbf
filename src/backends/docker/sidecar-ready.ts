// Whether a started sidecar has installed the lockdown and bound its listeners.
// The sidecar says so in one log line; reading its log since its last start is
// cheaper than a health-check exec every few seconds per sandbox, and exact: the
// workload is created only after that line, so it never runs unfenced.
import type Docker from "dockerode";
import type { ContainerInspectInfo } from "dockerode";
import { SIDECAR_READY_MESSAGE } from "./containers.js";

/** How long a freshly started sidecar may take to install the lockdown. */
export const SIDECAR_READY_TIMEOUT_MS = 20_000;

/**
 * How soon a sidecar still running but silent after SIDECAR_READY_TIMEOUT_MS
 * is waited for again. Fixed, not the work queue's failure backoff: that one
 * doubles to minutes, and a sidecar merely slow (a loaded host) would then sit
 * idle long after it became ready.
 */
export const SIDECAR_SLOW_RETRY_MS = 1_000;

/** The sidecar runs but has not said it is ready within the wait: slow, not broken. */
export class SidecarSlowError extends Error {
  constructor(readonly sidecar: string) {
    super(`egress sidecar ${sidecar} did not become ready in time`);
    this.name = "SidecarSlowError";
  }
}

/**
 * Resolves true once the sidecar's log since `startedAt` holds the ready line,
 * false when the log ends without it or `timeoutMs` passes. Rejects with the
 * signal's reason when `signal` aborts: a worker whose leadership is gone stops
 * waiting at once.
 */
export async function waitForSidecarReady(
  container: Docker.Container,
  state: { StartedAt: string; FinishedAt?: string },
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<boolean> {
  signal?.throwIfAborted();
  const stream = (await container.logs({
    follow: true,
    stdout: true,
    stderr: true,
    since: readySince(state) as unknown as number,
  })) as unknown as NodeJS.ReadableStream & { destroy(): void };
  return new Promise<boolean>((resolve, reject) => {
    let seen = "";
    const finish = (ready: boolean | Error) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", aborted);
      stream.removeAllListeners("data");
      stream.destroy();
      if (ready instanceof Error) reject(ready);
      else resolve(ready);
    };
    const aborted = () => finish(abortReason(signal));
    const timer = setTimeout(() => finish(false), timeoutMs);
    signal?.addEventListener("abort", aborted, { once: true });
    if (signal?.aborted) return aborted();
    stream.on("data", (chunk: Buffer) => {
      // Keep a tail only: the message may straddle two chunks.
      seen = (seen + chunk.toString("latin1")).slice(-4096);
      if (seen.includes(SIDECAR_READY_MESSAGE)) finish(true);
    });
    stream.on("end", () => finish(seen.includes(SIDECAR_READY_MESSAGE)));
    stream.on("error", () => finish(false));
  });
}

/** Which sidecar starts have been seen ready: each start (a restart too) is waited for once. */
export class SidecarReadiness {
  /** Container ID -> the StartedAt of the start seen ready. */
  private readonly ready = new Map<string, string>();

  constructor(
    private readonly docker: Docker,
    private readonly timeoutMs = SIDECAR_READY_TIMEOUT_MS,
  ) {}

  /** Whether this start of the sidecar was seen ready (no waiting). */
  seen(sidecar: ContainerInspectInfo): boolean {
    return sidecar.State.Running && this.ready.get(sidecar.Id) === sidecar.State.StartedAt;
  }

  /**
   * Waits for a running sidecar's ready line. False when it is not running (or
   * stopped meanwhile); throws SidecarSlowError when it runs but stays silent:
   * the caller looks again soon rather than waiting for an event that may not come.
   */
  async wait(sidecar: ContainerInspectInfo, signal?: AbortSignal): Promise<boolean> {
    if (!sidecar.State.Running) return false;
    if (this.seen(sidecar)) return true;
    const container = this.docker.getContainer(sidecar.Id);
    const ready = await waitForSidecarReady(container, sidecar.State, this.timeoutMs, signal);
    if (!ready) {
      const now = await container.inspect();
      if (now.State.Running && now.State.StartedAt === sidecar.State.StartedAt) {
        throw new SidecarSlowError(sidecar.Name);
      }
      return false;
    }
    this.ready.set(sidecar.Id, sidecar.State.StartedAt);
    return true;
  }

  forget(id: string): void {
    this.ready.delete(id);
  }
}

/** Docker's zero time: a container that never finished a run. */
const NEVER_PREFIX = "0001-01-01";

/**
 * Where this run's log begins, for the daemon's `since`. Not StartedAt: the
 * daemon records it once the start call returns, and a quick sidecar has
 * logged its ready line before that (seen here under load: the line 4 ms
 * before StartedAt, so it was never found and the sandbox waited for ever).
 * The end of the previous run instead, to the nanosecond: a restarted
 * container keeps its log, and the last run's ready line must not pass for
 * this run's; a container that never finished a run has only this run's
 * lines (0: the whole log).
 */
export function readySince(state: { FinishedAt?: string }): string {
  const finished = state.FinishedAt;
  if (!finished || finished.startsWith(NEVER_PREFIX)) return "0";
  return logsSince(finished);
}

/** Docker's `since` for a container timestamp: "seconds.nanoseconds", which the daemon accepts. */
export function logsSince(startedAt: string): string {
  const seconds = Math.floor(Date.parse(startedAt) / 1000);
  const fraction = /\.(\d{1,9})Z$/.exec(startedAt)?.[1] ?? "";
  return `${seconds}.${fraction.padEnd(9, "0")}`;
}

function abortReason(signal: AbortSignal | undefined): Error {
  const reason = signal?.reason;
  return reason instanceof Error ? reason : new Error("aborted");
}
