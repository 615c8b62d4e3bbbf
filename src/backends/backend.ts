// The contract between the Sandbox reconciler and a backend. The reconciler
// decides *what* should exist (lifetime, deletion, status); a backend knows *how*
// to make it exist on its platform and what it observes there. Backends know
// nothing about each other.
import type { ConditionReason } from "../api/conditions.js";
import type { Sandbox } from "../api/sandbox.js";
import type { Backend as BackendName } from "../api/sandbox-spec.js";
import type { Endpoint, Phase, WorkspaceStatus } from "../api/sandbox-status.js";

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
  /** The persistent workspace (spec.workspace), once made or found: status.workspace. */
  workspace?: WorkspaceStatus;
  /**
   * Whether the persistent workspace is there and mounted (the WorkspaceReady
   * condition); only for a sandbox with spec.workspace. A workspace that is
   * not ready keeps the workload from starting: the backend reports that as
   * the observation's reason too (WorkspacePending, WorkspaceNotFound,
   * SnapshotNotReady), with `stalled` when only someone acting resolves it.
   */
  workspaceReady?: { ready: boolean; reason: ConditionReason; message: string };
}

/** What a backend reports from `suspend`. */
export interface SuspendResult {
  /** True once nothing of the workload that uses compute is left (Pod gone, containers removed). */
  released: boolean;
  /** The workspace it kept, when the sandbox has one. */
  workspace?: WorkspaceStatus;
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
  /**
   * Remove every backend object of the sandbox. Resolves true once nothing is
   * left. The persistent workspace (spec.workspace) is an exception: it goes
   * only when the Sandbox itself is being deleted (metadata.deletionTimestamp)
   * and its retention policy is Delete; an expired (onExpire: Retain) or
   * failed sandbox keeps it, and a retained one is handed over so that no
   * sweep collects it (docker: relabelled; pod: owner reference dropped).
   */
  remove(sandbox: Sandbox, ctx: BackendContext): Promise<boolean>;
  /**
   * Suspend: release the workload's compute (delete the Pod / remove the
   * containers) and keep what makes the sandbox itself: the workspace, the
   * agent credential, and the objects that give it a stable address (pod:
   * Service, NetworkPolicy, Secret; docker: the network and the volume).
   * Idempotent; resolves with `released` once no workload is left, which may
   * take more than one call (a Pod terminating). Resuming is `ensure` again:
   * it recreates the workload from the spec on the same workspace and
   * identity. While a sandbox is recorded Suspended at its current
   * generation the reconciler calls neither verb (zero API calls and writes);
   * a backend must therefore not recreate a suspended sandbox's workload on
   * its own (docker's repair runs only from ensure, so it cannot).
   */
  suspend(sandbox: Sandbox, ctx: BackendContext): Promise<SuspendResult>;
  /** Whether the backend needs a finalizer (it holds things Kubernetes GC cannot reach). */
  readonly needsFinalizer: boolean;
}
