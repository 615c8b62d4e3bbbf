// Resume on use (issue 20, docs/idle.md): what a caller (the SDK's direct
// transports, the gateway, `kubectl sandbox`) does with a Sandbox it is about
// to use, as a pure function of the Sandbox; and the bounded wait that
// follows a resume, with the reads and the patch given by the caller.
import { IdleMark } from "../api/idle.js";

/** What waking needs of a Sandbox; anything shaped like the resource will do. */
export interface WakeInput {
  metadata: {
    namespace?: string;
    name?: string;
    uid?: string;
    deletionTimestamp?: unknown;
    annotations?: Record<string, string> | undefined;
  };
  spec?: { suspended?: boolean | undefined; [field: string]: unknown } | undefined;
  status?:
    | {
        phase?: string | undefined;
        conditions?: { type: string; status: string; message?: string | undefined }[] | undefined;
      }
    | undefined;
}

export type WakeState =
  /** Running and Ready: go ahead. */
  | { kind: "serving" }
  /** Suspended by the operator for idleness: resume it, then wait. */
  | { kind: "resume" }
  /** Coming up (resumed, not yet Ready): wait. */
  | { kind: "starting" }
  /** Waking is not the caller's to do: answer with this. */
  | {
      kind: "refuse";
      code: "SANDBOX_SUSPENDED" | "SANDBOX_FINISHED" | "SANDBOX_DELETING";
      message: string;
    };

const FINISHED = new Set(["Succeeded", "Failed", "Expired"]);

/** Whether the operator (not a person) suspended it: only then does use wake it. */
export function idleSuspended(s: WakeInput): boolean {
  return !!s.spec?.suspended && s.metadata.annotations?.[IdleMark.annotation] === IdleMark.value;
}

export function wakeState(s: WakeInput): WakeState {
  const what = `sandbox ${s.metadata.namespace}/${s.metadata.name}`;
  if (s.metadata.deletionTimestamp)
    return { kind: "refuse", code: "SANDBOX_DELETING", message: `${what} is being deleted` };
  const phase = s.status?.phase;
  if (phase && FINISHED.has(phase))
    return { kind: "refuse", code: "SANDBOX_FINISHED", message: `${what} is ${phase}` };
  if (s.spec?.suspended) {
    if (idleSuspended(s)) return { kind: "resume" };
    return {
      kind: "refuse",
      code: "SANDBOX_SUSPENDED",
      message: `${what} was suspended by its owner (spec.suspended: true), not for idleness: resume it with \`kubectl sandbox resume ${s.metadata.name}\` or Sandbox.resume()`,
    };
  }
  const ready = s.status?.conditions?.find((c) => c.type === "Ready")?.status === "True";
  return phase === "Running" && ready ? { kind: "serving" } : { kind: "starting" };
}

/** Whether a caller that met this Sandbox should try to wake it (rather than fail as before). */
export function asleep(s: WakeInput): boolean {
  return !!s.spec?.suspended || s.status?.phase === "Suspended";
}

/**
 * What a direct-transport caller does after a call failed to reach the
 * sandbox (connection refused or reset, a stale port), given a fresh read:
 * - `wake`: it is asleep; resume on use (when allowed) and call again;
 * - `reconnect`: it serves, so what failed was the caller's connection, made
 *   for an earlier workload (someone else resumed it, the docker backend
 *   published new ports): connect afresh and call again;
 * - `wait`: it is coming up (someone else's resume): wait until Ready, then
 *   connect afresh and call again;
 * - `fail`: nothing to retry (finished, deleted): the error stands.
 * A call that never reached the sandbox never ran: making it once more is safe.
 */
export function afterUnreachable(fresh: WakeInput): "wake" | "reconnect" | "wait" | "fail" {
  if (asleep(fresh)) return "wake";
  const state = wakeState(fresh);
  if (state.kind === "serving") return "reconnect";
  if (state.kind === "starting") return "wait";
  return "fail";
}

/**
 * The merge patch that resumes a sandbox: spec.suspended false and the idle
 * mark removed, for this incarnation only (a UID in the patch is a
 * precondition: a newer Sandbox of the same name answers 409).
 */
export function resumePatch(uid: string | undefined) {
  return {
    metadata: {
      ...(uid ? { uid } : {}),
      annotations: { [IdleMark.annotation]: null },
    },
    spec: { suspended: false },
  };
}

/** The merge patch that suspends it for idleness (the operator's, see suspender.ts). */
export function idleSuspendPatch(uid: string | undefined) {
  return {
    metadata: {
      ...(uid ? { uid } : {}),
      annotations: { [IdleMark.annotation]: IdleMark.value },
    },
    spec: { suspended: true },
  };
}

export class WakeTimeoutError extends Error {
  override name = "WakeTimeoutError";
}

export class WakeRefusedError extends Error {
  override name = "WakeRefusedError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface WakeOps<T extends WakeInput> {
  /** The Sandbox as it is now (an informer cache, or a GET). */
  read(): Promise<T | undefined> | T | undefined;
  /** Patch it with resumePatch (once). */
  resume(s: T): Promise<void>;
  timeoutMs: number;
  /** Between reads (default 100 ms). */
  pollMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Resumes a sandbox the operator suspended and waits until it serves, within
 * timeoutMs. Resolves with the serving Sandbox and whether this call resumed
 * it; throws WakeRefusedError (a person suspended it, it finished or is being
 * deleted) or WakeTimeoutError.
 */
export async function wake<T extends WakeInput>(
  ops: WakeOps<T>,
): Promise<{ sandbox: T; resumed: boolean }> {
  const now = ops.now ?? Date.now;
  const sleep = ops.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const deadline = now() + ops.timeoutMs;
  let resumed = false;
  let last = "not found";
  for (;;) {
    const s = await ops.read();
    if (!s) throw new WakeRefusedError("SANDBOX_NOT_FOUND", "the sandbox no longer exists");
    const state = wakeState(s);
    switch (state.kind) {
      case "serving":
        return { sandbox: s, resumed };
      case "refuse":
        throw new WakeRefusedError(state.code, state.message);
      case "resume":
        // Patched once; a cache that has not caught up yet shows it still suspended.
        if (!resumed) {
          await ops.resume(s);
          resumed = true;
        }
        last = "resuming";
        break;
      case "starting": {
        const ready = s.status?.conditions?.find((c) => c.type === "Ready");
        last = `phase ${s.status?.phase ?? "unknown"}${ready?.message ? `: ${ready.message}` : ""}`;
        break;
      }
    }
    const left = deadline - now();
    if (left <= 0)
      throw new WakeTimeoutError(
        `sandbox ${s.metadata.namespace}/${s.metadata.name} did not become Ready within ${ops.timeoutMs} ms of resuming (${last})`,
      );
    await sleep(Math.min(ops.pollMs ?? 100, left));
  }
}
