// The Sandbox reconciler's shell: read the Sandbox from the cache, ask decide()
// what to do, and do it: probe the backend, write the status, record Events,
// add or remove the finalizer, delete the Sandbox. Every decision is decide()'s
// (pure, table-tested); this file only performs them. Level-triggered: every
// call starts from the cache, so a restart at any instant converges to the same result.
import type { V1ObjectMeta } from "@kubernetes/client-node";
import { ConditionReason, isConditionReason } from "../api/conditions.js";
import type { SandboxStatus } from "../api/sandbox-status.js";
import type {
  BackendContext,
  BackendEvent,
  BackendName,
  SandboxBackend,
} from "../backends/backend.js";
import { PermanentError } from "../controller/errors.js";
import type { StatusWriteResult } from "../controller/status-writer.js";
import { keyOf } from "../kube/object-key.js";
import type { Logger } from "../observability/logger.js";
import {
  type DecideConfig,
  type Decision,
  decide,
  type Observed,
  SANDBOX_FINALIZER,
} from "./decide.js";
import { expiryTime, remaining } from "./lifetime.js";
import { SandboxReader, type SandboxView, sandboxOf } from "./read.js";
import { phaseEvent, readySeconds } from "./status.js";

export { SANDBOX_FINALIZER };

/** The Sandbox as the shell hands it to writers: metadata, and the status as stored. */
export interface SandboxRef {
  metadata: V1ObjectMeta;
  status?: object;
}

export interface ReconcilerDeps {
  /** The raw object from the informer cache (unparsed, possibly invalid). */
  getSandbox(key: string): unknown;
  backends: Partial<Record<BackendName, SandboxBackend>>;
  defaultBackend: BackendName;
  /** Diffs `status` against `sandbox.status` (as stored) and writes what differs. */
  writeStatus(sandbox: SandboxRef, status: SandboxStatus): Promise<StatusWriteResult>;
  deleteSandbox(sandbox: SandboxRef): Promise<void>;
  addFinalizer(sandbox: SandboxRef, finalizer: string): Promise<void>;
  removeFinalizer(sandbox: SandboxRef, finalizer: string): Promise<void>;
  recordEvent(sandbox: SandboxRef, event: BackendEvent): void;
  /** How long a workload may stay stalled (image pull, crash loop, unschedulable) before the sandbox fails. */
  stallTimeoutSeconds: number;
  now?: () => Date;
  log: Logger;
  /** Observe creation-to-Ready latency (seconds), once per sandbox. */
  onReady?(backend: BackendName, seconds: number): void;
}

export interface ReconcileResult {
  requeueAfter?: number;
}

/** Probe rounds per reconcile: decide() asks at most one question. */
const MAX_ROUNDS = 2;

export class SandboxReconciler {
  private readonly now: () => Date;
  private readonly config: DecideConfig;
  private readonly reader = new SandboxReader();

  constructor(private readonly deps: ReconcilerDeps) {
    this.now = deps.now ?? (() => new Date());
    this.config = {
      defaultBackend: deps.defaultBackend,
      backends: Object.fromEntries(
        Object.entries(deps.backends).map(([name, b]) => [
          name,
          { needsFinalizer: b.needsFinalizer },
        ]),
      ),
      stallTimeoutSeconds: deps.stallTimeoutSeconds,
    };
  }

  /**
   * Milliseconds until the sandbox's lifetime ends, from spec and metadata
   * alone; undefined when it is gone, being deleted or has no readable lifetime.
   */
  untilExpiry(key: string): number | undefined {
    const raw = this.deps.getSandbox(key);
    if (!raw) return undefined;
    const view = this.reader.read(key, raw);
    if (!view.lifetime || view.metadata.deletionTimestamp) return undefined;
    const at = expiryTime({
      creationTimestamp: view.metadata.creationTimestamp,
      lifetime: view.lifetime,
    });
    return remaining(at, this.now().getTime());
  }

  /** `signal` aborts the reconcile (leadership lost, shutdown) before any further write. */
  async reconcile(key: string, signal?: AbortSignal): Promise<ReconcileResult> {
    signal?.throwIfAborted();
    const raw = this.deps.getSandbox(key);
    if (!raw) {
      // Deleted: owner references (pod) or the finalizer (docker) took care of it.
      this.reader.forget(key);
      return {};
    }
    const view = this.reader.read(key, raw);
    const ref: SandboxRef = { metadata: view.metadata, status: view.storedStatus as object };
    const ctx: BackendContext = { record: (event) => this.deps.recordEvent(ref, event), signal };

    let observed: Observed = {};
    for (let round = 0; ; round++) {
      const decision = decide(view, observed, this.now(), this.config);
      if (!decision.probe) return this.perform(view, ref, decision, signal);
      if (round >= MAX_ROUNDS) throw new Error(`decide asked a probe too many (${decision.probe})`);
      signal?.throwIfAborted();
      observed = { ...observed, ...(await this.probe(view, decision.probe, ctx)) };
    }
  }

  private async probe(
    view: SandboxView,
    probe: NonNullable<Decision["probe"]>,
    ctx: BackendContext,
  ): Promise<Observed> {
    const backend = this.deps.backends[view.backend ?? this.deps.defaultBackend];
    if (!backend) throw new Error(`probe ${probe} without a backend`); // decide never asks
    // remove and observe work from metadata alone; a spec that cannot be read
    // still names its objects (by name and UID).
    const sandbox = sandboxOf({ ...view, spec: view.spec ?? ({} as never) });
    switch (probe) {
      case "remove":
        return { removed: await backend.remove(sandbox, ctx) };
      case "observe":
        return { observed: (await backend.observe(sandbox, ctx)) ?? null };
      case "suspend":
        return { suspended: await backend.suspend(sandbox, ctx) };
      case "ensure":
        try {
          return { ensured: await backend.ensure(sandbox, ctx) };
        } catch (err) {
          // The backend cannot do what the spec asks: a condition, not a retry storm.
          if (err instanceof PermanentError)
            return { refused: { reason: conditionReasonOf(err), message: err.message } };
          throw err;
        }
    }
  }

  private async perform(
    view: SandboxView,
    ref: SandboxRef,
    decision: Exclude<Decision, { probe: string }>,
    signal: AbortSignal | undefined,
  ): Promise<ReconcileResult> {
    const result = { requeueAfter: decision.requeueAfter };
    if (decision.invalid) this.logInvalid(view, decision.invalid);
    if (decision.status) {
      signal?.throwIfAborted();
      // False when the cache has not caught up with our previous write: the
      // sandbox comes back with its watch event, and is decided again from there.
      if (!(await this.writeStatus(view, ref, decision.status))) return {};
    }
    for (const action of decision.actions) {
      signal?.throwIfAborted();
      switch (action.type) {
        case "event":
          this.deps.recordEvent(ref, action.event);
          break;
        case "addFinalizer":
          await this.deps.addFinalizer(ref, SANDBOX_FINALIZER);
          break;
        case "removeFinalizer":
          await this.deps.removeFinalizer(ref, SANDBOX_FINALIZER);
          break;
        case "delete":
          await this.deps.deleteSandbox(ref);
          break;
      }
    }
    return result;
  }

  private async writeStatus(
    view: SandboxView,
    ref: SandboxRef,
    status: SandboxStatus,
  ): Promise<boolean> {
    if ((await this.deps.writeStatus(ref, status)) === "awaitingCache") return false;
    const before = view.status?.phase;
    if (status.phase && status.phase !== before) {
      this.deps.log.info(
        { sandbox: keyOf(view), from: before ?? "", to: status.phase, reason: status.reason },
        "sandbox phase changed",
      );
    }
    const event = phaseEvent(view.status, status);
    if (event) this.deps.recordEvent(ref, event);
    const seconds = readySeconds(view, status, this.now());
    if (seconds !== undefined) {
      this.deps.onReady?.(view.backend ?? this.deps.defaultBackend, seconds);
    }
    return true;
  }

  private logInvalid(
    view: SandboxView,
    { reason, message }: { reason: ConditionReason; message: string },
  ) {
    this.deps.log.warn({ sandbox: keyOf(view), reason, message }, "sandbox spec cannot be applied");
  }
}

export { keyOf };

/** A backend's refusal as a documented condition reason (an undocumented one reads as InvalidSpec). */
function conditionReasonOf(err: PermanentError): ConditionReason {
  return isConditionReason(err.reason) ? err.reason : ConditionReason.InvalidSpec;
}
