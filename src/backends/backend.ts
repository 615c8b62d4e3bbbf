// The contract between the Sandbox reconciler and a backend. The reconciler
// decides *what* should exist (lifetime, deletion, status); a backend knows *how*
// to make it exist on its platform and what it observes there. Backends know
// nothing about each other.
import type { ConditionReason } from "../api/conditions.js";
import type { Sandbox } from "../api/sandbox.js";
import type { Backend as BackendName } from "../api/sandbox-spec.js";
import type { Endpoint, Phase } from "../api/sandbox-status.js";

export type { BackendName };

/** What a backend saw of a sandbox's workload. */
export interface Observation {
  /** Workload phase; Expired is the reconciler's to decide. */
  phase: Extract<Phase, "Pending" | "Running" | "Succeeded" | "Failed">;
  ready: boolean;
  /** Why the workload is (not) ready, e.g. ImagePullBackOff. */
  reason: ConditionReason;
  message: string;
  /**
   * True when the reason is a state that only resolves by someone acting (a
   * missing image, a crash loop): the reconciler fails the sandbox if it lasts
   * longer than the configured grace period.
   */
  stalled?: boolean;
  /**
   * The backend could not make an object the sandbox needs (the apiserver
   * refused it): reconcile again with backoff while the refusal lasts. Comes
   * with `stalled`, whose condition dates the refusal.
   */
  retry?: boolean;
  /** Egress enforcement readiness, when the backend enforces egress. */
  egressReady?: { ready: boolean; reason: ConditionReason; message: string };
  podName?: string;
  containerId?: string;
  ip?: string;
  endpoints?: Endpoint[];
  startedAt?: string;
  finishedAt?: string;
  exitCode?: number;
}

export interface BackendEvent {
  type: "Normal" | "Warning";
  reason: string;
  message: string;
}

/** Lets a backend report what a person would want to see in `kubectl describe`. */
export interface BackendContext {
  record(event: BackendEvent): void;
  /** Aborted when the reconcile must stop (leadership lost, shutdown): pass it to every call. */
  signal?: AbortSignal;
}

export interface SandboxBackend {
  readonly name: BackendName;
  /**
   * Make the backend objects match the sandbox (create what is missing, repair
   * drift) and report what is observed. Idempotent; reads from caches, writes
   * only when something differs.
   */
  ensure(sandbox: Sandbox, ctx: BackendContext): Promise<Observation>;
  /**
   * Observe without creating or repairing: a finished sandbox's status is checked
   * against what exists (a hand-written phase is corrected) without running its
   * workload again. Undefined when no live or finished workload is there.
   */
  observe(sandbox: Sandbox, ctx: BackendContext): Promise<Observation | undefined>;
  /** Remove every backend object of the sandbox. Resolves true once nothing is left. */
  remove(sandbox: Sandbox, ctx: BackendContext): Promise<boolean>;
  /** Whether the backend needs a finalizer (it holds things Kubernetes GC cannot reach). */
  readonly needsFinalizer: boolean;
}
