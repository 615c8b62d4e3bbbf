// The Sandbox reconciler: from the resource as stored, decide what should exist
// (lifetime, deletion, backend), let the backend make it so, and record what is
// observed. Level-triggered: every call starts from the cache, so a restart at
// any instant converges to the same result.
import { ConditionReason, ConditionType } from "../api/conditions.js";
import { type Sandbox, SandboxSchema } from "../api/sandbox.js";
import type { SandboxSpec } from "../api/sandbox-spec.js";
import type { SandboxStatus } from "../api/sandbox-status.js";
import type {
  BackendContext,
  BackendEvent,
  BackendName,
  SandboxBackend,
} from "../backends/backend.js";
import { findCondition, isTrue } from "../controller/conditions.js";
import { PermanentError } from "../controller/errors.js";
import type { StatusWriteResult } from "../controller/status-writer.js";
import type { Logger } from "../observability/logger.js";
import { expiryTime, remaining } from "./lifetime.js";
import { expiredStatus, invalidStatus, observedStatus, stalledFailedStatus } from "./status.js";

export const SANDBOX_FINALIZER = "sandboxing.dev/cleanup";

/** Longest single wait: timers beyond this are re-armed by a fresh reconcile. */
const MAX_REQUEUE_MS = 60 * 60 * 1000;
/** Poll interval while a backend is still tearing something down. */
const TEARDOWN_POLL_MS = 1000;

export interface ReconcilerDeps {
  /** The raw object from the informer cache (unparsed, possibly invalid). */
  getSandbox(key: string): unknown;
  backends: Partial<Record<BackendName, SandboxBackend>>;
  defaultBackend: BackendName;
  writeStatus(sandbox: Sandbox, status: SandboxStatus): Promise<StatusWriteResult>;
  deleteSandbox(sandbox: Sandbox): Promise<void>;
  addFinalizer(sandbox: Sandbox, finalizer: string): Promise<void>;
  removeFinalizer(sandbox: Sandbox, finalizer: string): Promise<void>;
  recordEvent(sandbox: Sandbox, event: BackendEvent): void;
  /** How long a workload may stay stalled (image pull, crash loop, unschedulable) before the sandbox fails. */
  stallTimeoutSeconds: number;
  now?: () => Date;
  log: Logger;
  /** Observe creation-to-Ready latency (seconds), once per sandbox. */
  onReady?(sandbox: Sandbox, seconds: number): void;
}

export interface ReconcileResult {
  requeueAfter?: number;
}

const TERMINAL: ReadonlySet<string> = new Set(["Succeeded", "Failed", "Expired"]);

export class SandboxReconciler {
  private readonly now: () => Date;

  constructor(private readonly deps: ReconcilerDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  async reconcile(key: string, signal?: AbortSignal): Promise<ReconcileResult> {
    signal?.throwIfAborted();
    const raw = this.deps.getSandbox(key) as Sandbox | undefined;
    if (!raw) return {}; // deleted: owner references (pod) or the finalizer (docker) took care of it

    const parsed = SandboxSchema.safeParse(raw);
    if (!parsed.success) {
      return this.invalid(
        raw,
        parsed.error.issues
          .map((i) => `${["spec", ...i.path.slice(1)].join(".")}: ${i.message}`)
          .join("; "),
      );
    }
    const sandbox = parsed.data;
    const backendName = sandbox.spec.backend ?? this.deps.defaultBackend;
    const backend = this.deps.backends[backendName];
    const ctx = this.context(sandbox);

    if (sandbox.metadata.deletionTimestamp) return this.finalize(sandbox, ctx);
    if (!backend) {
      return this.invalid(
        sandbox,
        `backend "${backendName}" is not enabled on this operator`,
        ConditionReason.Unsupported,
      );
    }
    if (backend.needsFinalizer && !sandbox.metadata.finalizers?.includes(SANDBOX_FINALIZER)) {
      await this.deps.addFinalizer(sandbox, SANDBOX_FINALIZER);
      return {}; // the update event brings us back with the finalizer in place
    }

    const now = this.now();
    const expiresAtMs = expiryTime({
      creationTimestamp: sandbox.metadata.creationTimestamp,
      lifetime: sandbox.spec.lifetime,
    });
    if (now.getTime() >= expiresAtMs) return this.expire(sandbox, backend, ctx, expiresAtMs, now);

    const untilExpiry = remaining(expiresAtMs, now.getTime());
    if (TERMINAL.has(sandbox.status?.phase ?? "")) {
      // Finished: keep the record (and a finished pod's logs) until the lifetime
      // ends. A workload we failed for stalling is removed (again, if a removal
      // was interrupted): it would otherwise keep pulling or crash-looping.
      if (isTrue(sandbox.status?.conditions, ConditionType.Stalled))
        await backend.remove(sandbox, ctx);
      return { requeueAfter: cap(untilExpiry) };
    }

    let observation: Awaited<ReturnType<SandboxBackend["ensure"]>>;
    try {
      observation = await backend.ensure(sandbox, ctx);
    } catch (err) {
      // The backend cannot do what the spec asks: a condition, not a retry storm.
      if (err instanceof PermanentError)
        return this.invalid(sandbox, err.message, err.reason as ConditionReason);
      throw err;
    }
    let status = observedStatus({ sandbox, backend: backendName, observation, expiresAtMs, now });
    let requeueAfter = untilExpiry;

    if (observation.stalled) {
      const stalledFor = stalledDuration(sandbox, now);
      const graceMs = this.deps.stallTimeoutSeconds * 1000;
      if (stalledFor >= graceMs) {
        // Record the failure first: the terminal phase is what stops us recreating it.
        status = stalledFailedStatus(
          status,
          sandbox,
          observation,
          this.deps.stallTimeoutSeconds,
          now,
        );
        if (!(await this.writeStatus(sandbox, status))) return {};
        await backend.remove(sandbox, ctx);
        return { requeueAfter: cap(untilExpiry) };
      } else {
        requeueAfter = Math.min(requeueAfter, graceMs - stalledFor);
      }
    }

    await this.writeStatus(sandbox, status);
    return { requeueAfter: cap(requeueAfter) };
  }

  private async expire(
    sandbox: Sandbox,
    backend: SandboxBackend,
    ctx: BackendContext,
    expiresAtMs: number,
    now: Date,
  ): Promise<ReconcileResult> {
    if (sandbox.spec.lifetime.onExpire === "Delete") {
      this.deps.recordEvent(sandbox, {
        type: "Normal",
        reason: "Expired",
        message: "the lifetime ran out; deleting the sandbox",
      });
      await this.deps.deleteSandbox(sandbox);
      return {};
    }
    const gone = await backend.remove(sandbox, ctx);
    if (sandbox.status?.phase !== "Expired") {
      this.deps.recordEvent(sandbox, {
        type: "Normal",
        reason: "Expired",
        message: "the lifetime ran out; the workload was removed and the sandbox retained",
      });
    }
    await this.writeStatus(sandbox, expiredStatus(sandbox, expiresAtMs, now));
    return gone ? {} : { requeueAfter: TEARDOWN_POLL_MS };
  }

  private async finalize(sandbox: Sandbox, ctx: BackendContext): Promise<ReconcileResult> {
    if (!sandbox.metadata.finalizers?.includes(SANDBOX_FINALIZER)) return {};
    const name = sandbox.spec.backend ?? this.deps.defaultBackend;
    const backend = this.deps.backends[name];
    const gone = backend ? await backend.remove(sandbox, ctx) : true;
    if (!gone) return { requeueAfter: TEARDOWN_POLL_MS };
    await this.deps.removeFinalizer(sandbox, SANDBOX_FINALIZER);
    return {};
  }

  /** A spec only the controller can judge invalid: a condition, no retry. */
  private async invalid(
    sandbox: Sandbox,
    message: string,
    reason: ConditionReason = ConditionReason.InvalidSpec,
  ): Promise<ReconcileResult> {
    this.deps.log.warn(
      { sandbox: keyOf(sandbox), reason, message },
      "sandbox spec cannot be applied",
    );
    const status = invalidStatus(sandbox, message, this.now(), reason);
    await this.writeStatus(sandbox, status);
    return {};
  }

  /**
   * Writes the status and reports what changed. False when the cache has not
   * caught up with our previous write: the sandbox comes back with its watch
   * event, and what this status would say is decided again from there.
   */
  private async writeStatus(sandbox: Sandbox, status: SandboxStatus): Promise<boolean> {
    const before = sandbox.status?.phase;
    if ((await this.deps.writeStatus(sandbox, status)) === "awaitingCache") return false;
    if (status.phase && status.phase !== before) {
      this.deps.log.info(
        { sandbox: keyOf(sandbox), from: before ?? "", to: status.phase, reason: status.reason },
        "sandbox phase changed",
      );
      // A new sandbox being Pending says nothing its creation did not: no Event
      // (one write less per sandbox; later changes, back to Pending included, get one).
      const news = before !== undefined || status.phase !== "Pending";
      if (news) {
        this.deps.recordEvent(sandbox, {
          type: status.phase === "Failed" ? "Warning" : "Normal",
          reason: status.phase,
          message: status.message ?? `sandbox is ${status.phase.toLowerCase()}`,
        });
      }
    }
    this.noteReady(sandbox, status);
    return true;
  }

  /** Report creation-to-Ready once, on the write that makes the sandbox Ready. */
  private noteReady(sandbox: Sandbox, status: SandboxStatus): void {
    const wasReady =
      findCondition(sandbox.status?.conditions, ConditionType.Ready)?.status === "True";
    const isReady = findCondition(status.conditions, ConditionType.Ready)?.status === "True";
    if (isReady && !wasReady && sandbox.metadata.creationTimestamp) {
      const created = new Date(sandbox.metadata.creationTimestamp).getTime();
      this.deps.onReady?.(sandbox, (this.now().getTime() - created) / 1000);
    }
  }

  private context(sandbox: Sandbox): BackendContext {
    return { record: (event) => this.deps.recordEvent(sandbox, event) };
  }
}

/** How long the workload has been stalled: since the Stalled condition last turned True. */
function stalledDuration(sandbox: Sandbox, now: Date): number {
  const stalled = findCondition(sandbox.status?.conditions, ConditionType.Stalled);
  if (stalled?.status !== "True") return 0;
  return Math.max(0, now.getTime() - Date.parse(stalled.lastTransitionTime));
}

function cap(ms: number): number {
  return Math.min(Math.max(ms, 0) + 1, MAX_REQUEUE_MS);
}

export function keyOf(sandbox: { metadata: { namespace?: string; name?: string } }): string {
  return `${sandbox.metadata.namespace}/${sandbox.metadata.name}`;
}

export type { SandboxSpec };
