// The idle check's thin shell: for a Sandbox the reconciler just handled, ask
// decideIdle() what to do, read the agent's activity when it says so, and
// suspend (a merge patch of spec.suspended and the idle mark, an Event) when
// the sandbox went unused for its idleTimeout. Runs inside the reconcile, so
// only the leader does it and a sandbox is never checked twice at once; the
// next look comes back as a requeue. Memory is an optimisation only: after a
// restart the first look is at once (one read), never a wrong suspension.
import { Counter, type Registry } from "prom-client";
import { IdleEventReason, IdleMark } from "../api/idle.js";
import type { BackendEvent } from "../backends/backend.js";
import type { Activity } from "../dataplane/protocol.js";
import type { Logger } from "../observability/logger.js";
import { type ActivityReading, decideIdle, type IdleView } from "./decide.js";
import { idleSuspendPatch, type WakeInput } from "./wake.js";

/** A Sandbox as the check reads it: its idle view, and the object to patch and record Events on. */
export interface IdleSubject {
  view: IdleView;
  sandbox: WakeInput & { metadata: { namespace?: string; name?: string; uid?: string } };
}

export interface SuspenderDeps {
  /** From the informer cache; undefined when gone. */
  subject(key: string): IdleSubject | undefined;
  /** GET /v1/activity of the sandbox's agent, however its backend reaches it. */
  readActivity(sandbox: IdleSubject["sandbox"], backend: string | undefined): Promise<Activity>;
  /** A JSON merge patch of the Sandbox (not its status). */
  patch(sandbox: IdleSubject["sandbox"], body: object): Promise<void>;
  recordEvent(sandbox: IdleSubject["sandbox"], event: BackendEvent): void;
  registry?: Registry;
  metricPrefix?: string;
  now?: () => number;
  log: Logger;
}

/** An activity read that takes longer is an unanswered one (the reconcile worker waits for it). */
export const ACTIVITY_READ_TIMEOUT_MS = 5000;

export class IdleSuspender {
  private readonly next = new Map<string, { uid: string | undefined; atMs: number }>();
  private readonly now: () => number;
  private readonly reads: Counter<"result">;
  private readonly suspensions: Counter;

  constructor(private readonly deps: SuspenderDeps) {
    this.now = deps.now ?? Date.now;
    const prefix = deps.metricPrefix ?? "sandbox_operator";
    const registers = deps.registry ? [deps.registry] : [];
    this.reads = new Counter({
      name: `${prefix}_idle_activity_reads_total`,
      help: "Reads of a sandbox agent's activity clock by the idle check (one per idle period per sandbox in use), by result.",
      labelNames: ["result"],
      registers,
    });
    this.suspensions = new Counter({
      name: `${prefix}_idle_suspensions_total`,
      help: "Sandboxes suspended because nothing used them for their idleTimeout.",
      registers,
    });
  }

  /** Milliseconds until this sandbox should be looked at again; undefined: no idle timer. */
  async check(key: string, backend?: string): Promise<number | undefined> {
    const subject = this.deps.subject(key);
    if (!subject) {
      this.next.delete(key);
      return undefined;
    }
    const { view, sandbox } = subject;
    const uid = sandbox.metadata.uid;
    const remembered = this.next.get(key);
    const memory = remembered && remembered.uid === uid ? { nextCheckAtMs: remembered.atMs } : {};
    let decision = decideIdle(view, memory, undefined, this.now());
    if (decision.kind === "read") {
      const reading = await this.read(sandbox, backend);
      decision = decideIdle(view, memory, reading, this.now());
    }
    switch (decision.kind) {
      case "read": // decideIdle never asks twice
      case "none":
        this.next.delete(key);
        return undefined;
      case "wait":
        this.next.set(key, { uid, atMs: decision.atMs });
        return Math.max(0, decision.atMs - this.now());
      case "clearAnnotation":
        await this.deps.patch(sandbox, {
          metadata: {
            ...(uid ? { uid } : {}),
            annotations: { [IdleMark.annotation]: null },
          },
        });
        return undefined;
      case "suspend": {
        this.next.delete(key);
        await this.deps.patch(sandbox, idleSuspendPatch(uid));
        this.suspensions.inc();
        const idle = formatDuration(decision.idleMs);
        this.deps.log.info(
          { sandbox: key, idleMs: decision.idleMs },
          "sandbox suspended for idleness",
        );
        this.deps.recordEvent(sandbox, {
          type: "Normal",
          reason: IdleEventReason.IdleSuspended,
          message: `no data-plane call or port traffic for ${idle} (idleTimeout ${formatDuration(view.idleTimeoutMs ?? 0)}): suspended; the next call through the SDK or the gateway resumes it`,
        });
        return undefined;
      }
    }
  }

  forget(key: string): void {
    this.next.delete(key);
  }

  private async read(
    sandbox: IdleSubject["sandbox"],
    backend: string | undefined,
  ): Promise<ActivityReading> {
    try {
      const a = await withTimeout(
        this.deps.readActivity(sandbox, backend),
        ACTIVITY_READ_TIMEOUT_MS,
      );
      this.reads.inc({ result: "ok" });
      return { idleMs: a.idleMs, inFlight: a.inFlight };
    } catch (err) {
      this.reads.inc({ result: "error" });
      const error = (err as Error).message ?? String(err);
      this.deps.log.debug(
        { sandbox: `${sandbox.metadata.namespace}/${sandbox.metadata.name}`, err: error },
        "activity read failed",
      );
      return { error };
    }
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** "1h2m3s" from milliseconds (seconds precision). */
export function formatDuration(ms: number): string {
  let s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `${h ? `${h}h` : ""}${m ? `${m}m` : ""}${s || (!h && !m) ? `${s}s` : ""}`;
}
