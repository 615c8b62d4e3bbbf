// Condition types and reasons of a SandboxSnapshot. API, like the Sandbox's
// (conditions.ts): tools match on these strings.

export const SnapshotConditionType = {
  /** The copy is complete and can be restored from. */
  Ready: "Ready",
} as const;

export const SnapshotReason = {
  /** The copy is being taken. */
  Creating: "Creating",
  /** The copy is complete (size and, where the backend computes one, checksum recorded). */
  SnapshotReady: "SnapshotReady",
  /** The source Sandbox does not exist (or is another incarnation than the one the snapshot began from). */
  SourceNotFound: "SourceNotFound",
  /** The source Sandbox has no spec.workspace: there is nothing persistent to copy. */
  NoWorkspace: "NoWorkspace",
  /** The backend cannot snapshot this workspace (pod backend: no VolumeSnapshotClass for its storage class's driver). */
  SnapshotUnsupported: "SnapshotUnsupported",
  /** The copy failed; the message carries the backend's words. */
  SnapshotFailed: "SnapshotFailed",
  /** The backend (the Docker daemon) cannot be reached; retried. */
  BackendUnavailable: "BackendUnavailable",
} as const;
export type SnapshotReason = (typeof SnapshotReason)[keyof typeof SnapshotReason];
