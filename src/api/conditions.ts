// Condition types and reasons of a Sandbox. These strings are API: users and
// tools match on them, so they never change meaning once released. Reasons are
// CamelCase as metav1.Condition requires. The README's conditions table is
// generated from CONDITIONS below (`make crds`; `make crds-check` fails when it
// is stale), so a type or reason cannot be added without being documented.

export const ConditionType = {
  /** The workload is running and (when egress is enforced) its egress is ready. */
  Ready: "Ready",
  /** The egress lockdown and sidecar are in place and serving the current policy. */
  EgressReady: "EgressReady",
  /** The sandbox's lifetime has run out. */
  Expired: "Expired",
  /** The spec could not be turned into backend objects (a user's mistake, not retried). */
  Invalid: "Invalid",
  /**
   * The workload cannot progress without someone acting (image pull, crash loop,
   * unschedulable, missing configuration, a refused create). Its lastTransitionTime
   * is when the stall began; the sandbox fails once it lasts longer than the
   * operator's --stall-timeout.
   */
  Stalled: "Stalled",
  /**
   * The workload's compute is released on request (spec.suspended) while the
   * Sandbox, its workspace and identity are kept. Absent on a sandbox never suspended.
   */
  Suspended: "Suspended",
  /** The persistent workspace (spec.workspace) exists and is mounted, or why not. */
  WorkspaceReady: "WorkspaceReady",
} as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];

export const ConditionReason = {
  // Ready
  /** Backend objects are being created or the workload has not started yet. */
  Creating: "Creating",
  /** The workload is running and ready. */
  Running: "Running",
  /** The workload exited with code 0. */
  Succeeded: "Succeeded",
  /** The workload exited with a non-zero code, or could not be started. */
  Failed: "Failed",
  /** The image could not be pulled; the message carries the backend's words. */
  ImagePullBackOff: "ImagePullBackOff",
  ErrImagePull: "ErrImagePull",
  /** Docker backend: the image is not present and pulling it failed. */
  ImagePullFailed: "ImagePullFailed",
  /** The workload keeps crashing and is being restarted with back-off. */
  CrashLoopBackOff: "CrashLoopBackOff",
  /** The container could not be configured, usually a missing Secret or key. */
  CreateContainerConfigError: "CreateContainerConfigError",
  /** No node can run the pod. */
  Unschedulable: "Unschedulable",
  /** The workload was killed for exceeding its memory limit. */
  OOMKilled: "OOMKilled",
  /** The backend (e.g. the Docker daemon) cannot be reached. */
  BackendUnavailable: "BackendUnavailable",
  /** The sandbox's lifetime ran out and its workload was removed. */
  Expired: "Expired",
  /** Something the spec references (a RuntimeClass) does not exist. */
  MissingReference: "MissingReference",
  /**
   * The apiserver refused an object the sandbox needs (admission, quota, a
   * LimitRange, validation); the message carries its words.
   */
  Rejected: "Rejected",
  /** An object the sandbox needs exists under its name but belongs to someone else. */
  NameTaken: "NameTaken",
  /** The spec is valid for the schema but cannot be applied by the chosen backend. */
  Unsupported: "Unsupported",
  /**
   * A docker hostPath mount lies outside the operator's --docker-allowed-host-paths
   * (or asks for write access the allowlist does not give); the message names
   * the path. Nothing is mounted and the workload is not started.
   */
  HostPathNotAllowed: "HostPathNotAllowed",

  // Ready and Suspended
  /** spec.suspended was set: the workload is being removed (Ready), or the removal is under way (Suspended=False). */
  Suspending: "Suspending",
  /** The workload is removed and its compute released; the workspace is kept. */
  Suspended: "Suspended",
  /**
   * Suspended for idleness: no use for spec.idleTimeout. Whoever suspends for
   * idleness sets spec.suspended and the annotation sandboxing.dev/suspend-reason=IdleTimeout.
   */
  IdleTimeout: "IdleTimeout",
  /** spec.suspended was cleared: the workload runs again on the same workspace. */
  Resumed: "Resumed",

  // WorkspaceReady
  /** The workspace exists and is mounted. */
  WorkspaceBound: "WorkspaceBound",
  /** The workspace is being created or bound (a PVC waiting for its volume). */
  WorkspacePending: "WorkspacePending",
  /** spec.workspace.existing names a workspace that does not exist, or that this Sandbox may not mount. */
  WorkspaceNotFound: "WorkspaceNotFound",
  /** spec.workspace.fromSnapshot names a SandboxSnapshot that is missing or not ready yet. */
  SnapshotNotReady: "SnapshotNotReady",

  // EgressReady
  /** The lockdown is installed and the sidecar serves the current policy. */
  EgressEnforced: "EgressEnforced",
  /** The sidecar is not ready yet, or is restarting (egress stays closed meanwhile). */
  EgressPending: "EgressPending",

  // Expired
  /** The lifetime has not run out. */
  NotExpired: "NotExpired",
  /** The lifetime ran out at status.expiresAt. */
  LifetimeElapsed: "LifetimeElapsed",

  // Stalled
  /** The workload is making progress. */
  Progressing: "Progressing",

  // Invalid
  /** The spec is valid. */
  Valid: "Valid",
  /** The spec failed the controller's validation; the message says which field and why. */
  InvalidSpec: "InvalidSpec",
} as const;
export type ConditionReason = (typeof ConditionReason)[keyof typeof ConditionReason];

const REASONS: ReadonlySet<string> = new Set(Object.values(ConditionReason));

/** Whether a string (e.g. a backend's PermanentError reason) is one of the documented reasons. */
export function isConditionReason(reason: string): reason is ConditionReason {
  return REASONS.has(reason);
}

const R = ConditionReason;

/** What each condition type means and which reasons it carries: the README's table. */
export const CONDITIONS: ReadonlyArray<{
  type: ConditionType;
  meaning: string;
  reasons: readonly ConditionReason[];
  /** Said before the reasons, for a condition that borrows another's reasons. */
  reasonsNote?: string;
}> = [
  {
    type: ConditionType.Ready,
    meaning: "the workload runs and is ready (and, where egress is enforced, so is its egress)",
    reasons: [
      R.Creating,
      R.Running,
      R.Succeeded,
      R.Failed,
      R.OOMKilled,
      R.ImagePullBackOff,
      R.ErrImagePull,
      R.ImagePullFailed,
      R.CrashLoopBackOff,
      R.CreateContainerConfigError,
      R.Unschedulable,
      R.BackendUnavailable,
      R.MissingReference,
      R.Rejected,
      R.NameTaken,
      R.EgressPending,
      R.Expired,
      R.InvalidSpec,
      R.Unsupported,
      R.HostPathNotAllowed,
      R.WorkspacePending,
      R.WorkspaceNotFound,
      R.SnapshotNotReady,
      R.Suspending,
      R.Suspended,
    ],
  },
  {
    type: ConditionType.EgressReady,
    meaning: "the egress lockdown and sidecar are in place and serve the current policy",
    reasons: [R.EgressEnforced, R.EgressPending],
  },
  {
    type: ConditionType.Stalled,
    meaning:
      "the workload cannot progress without someone acting; after `--stall-timeout` (default 300 s) the sandbox fails and its workload is removed",
    reasonsNote: "the `Ready` reason that stalled it",
    reasons: [R.Progressing],
  },
  {
    type: ConditionType.Expired,
    meaning: "the lifetime ran out",
    reasons: [R.NotExpired, R.LifetimeElapsed],
  },
  {
    type: ConditionType.Invalid,
    meaning: "the spec passed the schema but cannot be applied",
    reasons: [R.InvalidSpec, R.Unsupported, R.HostPathNotAllowed, R.Rejected, R.Valid],
  },
  {
    type: ConditionType.Suspended,
    meaning:
      "the workload's compute is released (`spec.suspended`) and the workspace kept; the lifetime keeps counting",
    reasons: [R.Suspended, R.IdleTimeout, R.Suspending, R.Resumed],
  },
  {
    type: ConditionType.WorkspaceReady,
    meaning: "the persistent workspace (`spec.workspace`) exists and is mounted",
    reasons: [R.WorkspaceBound, R.WorkspacePending, R.WorkspaceNotFound, R.SnapshotNotReady],
  },
];
