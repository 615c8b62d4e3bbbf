// The persistent workspace of a sandbox on the pod backend: a PVC, made from
// spec.workspace.volume (or restored from a snapshot), or one that exists
// (spec.workspace.existing). And the extra read-only mounts of Secrets and
// ConfigMaps. Pure builders and decisions; the backend (./backend.ts) does the
// API calls.
//
// Ownership follows the retention policy, so that Kubernetes alone keeps it
// right even while no controller runs:
// - Delete: the PVC has the Sandbox as controller owner; garbage collection
//   removes it once the Sandbox is deleted (after the Pod: pvc-protection).
// - Retain: no owner reference at all, ever, so no cascade can take it; it is
//   labelled with the sandbox's name and marked retained, and a later Sandbox
//   mounts it through workspace.existing (or, with the same name and a
//   template, gets it back like a StatefulSet's claim).
import type {
  V1PersistentVolumeClaim,
  V1TypedLocalObjectReference,
  V1Volume,
  V1VolumeMount,
} from "@kubernetes/client-node";
import { ConditionReason } from "../../api/conditions.js";
import { GROUP } from "../../api/group.js";
import { Labels } from "../../api/labels.js";
import { parseQuantity } from "../../api/quantity.js";
import type { Sandbox } from "../../api/sandbox.js";
import { workspaceMountPath } from "../../api/sandbox-spec.js";
import type { WorkspaceStatus } from "../../api/sandbox-status.js";
import { DEFAULT_WORKSPACE_SIZE, type Mount, retentionOf } from "../../api/workspace.js";
import { ownerReference, ownLabels } from "./metadata.js";

/** The Pod volume carrying the persistent workspace. */
export const WORKSPACE_VOLUME = "persistent-workspace";
/** Label on a workspace PVC: which Sandbox (by name) it is the workspace of. */
export const WORKSPACE_LABEL = `${GROUP}/workspace-of`;
/** Label on a workspace PVC: its retention policy (Retain: no owner, kept for a later Sandbox). */
export const RETENTION_LABEL = `${GROUP}/retention`;
/** API group of CSI VolumeSnapshots (external-snapshotter). */
export const VOLUME_SNAPSHOT_GROUP = "snapshot.storage.k8s.io";

/** Name of the PVC a workspace template makes: stable for the Sandbox's name, so a same-named successor finds a retained one. */
export function workspaceClaimName(sandbox: Sandbox): string {
  const existing = sandbox.spec.workspace?.existing;
  return existing ? existing.name : `${sandbox.metadata.name}-workspace`;
}

export function workspaceStatus(sandbox: Sandbox): WorkspaceStatus | undefined {
  const w = sandbox.spec.workspace;
  if (!w) return undefined;
  return {
    name: workspaceClaimName(sandbox),
    retentionPolicy: retentionOf(w),
    fromSnapshot: w.fromSnapshot?.name,
  };
}

/**
 * The PVC a workspace template asks for; undefined for `existing` (never made
 * or changed by the operator). `snapshot`: the VolumeSnapshot to start from.
 */
/** What a restore knows of the snapshot a new workspace starts from. */
export interface RestoreSource {
  volumeSnapshot: string;
  /** The source workspace's StorageClass, if its PVC is still there. */
  storageClassName?: string;
  /** The snapshot's restore size (the SandboxSnapshot's sizeBytes). */
  sizeBytes?: number;
}

/**
 * A restore needs the driver that holds the snapshot and room for it: unless
 * the template names a class, the source workspace's class (the cluster's
 * default may well be one that cannot restore it, e.g. a local-path class),
 * and a size at least the snapshot's restore size (a smaller claim is refused
 * by the provisioner, and the sandbox would wait for ever).
 */
function restoredShape(
  volume: { storageClassName?: string; size?: string | number } | undefined,
  snapshot: RestoreSource | undefined,
): { storageClassName?: string; size: string } {
  const requested = String(volume?.size ?? DEFAULT_WORKSPACE_SIZE);
  const storageClassName = volume?.storageClassName ?? snapshot?.storageClassName;
  const want = snapshot?.sizeBytes;
  let size = requested;
  if (want !== undefined) {
    let have: number | undefined;
    try {
      have = parseQuantity(requested);
    } catch {
      have = undefined;
    }
    if (have !== undefined && have < want) size = String(want);
  }
  return { ...(storageClassName ? { storageClassName } : {}), size };
}

export function desiredWorkspaceClaim(
  sandbox: Sandbox,
  snapshot?: RestoreSource,
): V1PersistentVolumeClaim | undefined {
  const w = sandbox.spec.workspace;
  if (!w || w.existing) return undefined;
  const volume = w.volume;
  const retain = retentionOf(w) === "Retain";
  const dataSource: V1TypedLocalObjectReference | undefined = snapshot
    ? { apiGroup: VOLUME_SNAPSHOT_GROUP, kind: "VolumeSnapshot", name: snapshot.volumeSnapshot }
    : undefined;
  const shape = restoredShape(volume, snapshot);
  return {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: {
      name: workspaceClaimName(sandbox),
      namespace: sandbox.metadata.namespace!,
      labels: {
        ...ownLabels(sandbox),
        [Labels.component]: "workspace",
        [WORKSPACE_LABEL]: sandbox.metadata.name!,
        [RETENTION_LABEL]: retain ? "Retain" : "Delete",
      },
      ownerReferences: retain ? undefined : [ownerReference(sandbox)],
    },
    spec: {
      storageClassName: shape.storageClassName,
      accessModes: volume?.accessModes ?? ["ReadWriteOnce"],
      resources: { requests: { storage: shape.size } },
      dataSource,
    },
  };
}

/** What the backend makes of a PVC found under the workspace's name. */
export type ClaimVerdict =
  /** Ours to use as it is. */
  | { use: true }
  /** Not usable (yet): the reason for WorkspaceReady and the Ready condition. */
  | { use: false; reason: ConditionReason; message: string; stalled: boolean };

/**
 * Whether the PVC found under a template's name is this sandbox's: owned by
 * it, or retained by an earlier Sandbox of the same name (StatefulSet-like).
 * One owned by an earlier Sandbox is on its way out with it; anything else is
 * someone else's and never taken over.
 */
export function judgeTemplateClaim(sandbox: Sandbox, claim: V1PersistentVolumeClaim): ClaimVerdict {
  const name = claim.metadata?.name ?? "";
  const owners = claim.metadata?.ownerReferences ?? [];
  if (owners.some((o) => o.controller && o.uid === sandbox.metadata.uid)) return { use: true };
  if (claim.metadata?.deletionTimestamp || owners.some((o) => o.controller)) {
    return {
      use: false,
      reason: ConditionReason.WorkspacePending,
      message: `PVC ${name} belongs to an earlier sandbox of this name and is being deleted with it`,
      stalled: false,
    };
  }
  const labels = claim.metadata?.labels ?? {};
  if (labels[WORKSPACE_LABEL] === sandbox.metadata.name && labels[RETENTION_LABEL] === "Retain") {
    return { use: true };
  }
  return {
    use: false,
    reason: ConditionReason.WorkspaceNotFound,
    message: `PVC ${name} exists and is not a workspace of this sandbox: delete or rename it, or mount it through spec.workspace.existing`,
    stalled: true,
  };
}

/** Whether an `existing` workspace can be mounted: a PVC not being deleted. */
export function judgeExistingClaim(
  name: string,
  claim: V1PersistentVolumeClaim | undefined,
): ClaimVerdict {
  if (!claim) {
    return {
      use: false,
      reason: ConditionReason.WorkspaceNotFound,
      message: `PVC ${name} (spec.workspace.existing) does not exist in this namespace`,
      stalled: true,
    };
  }
  if (claim.metadata?.deletionTimestamp) {
    return {
      use: false,
      reason: ConditionReason.WorkspaceNotFound,
      message: `PVC ${name} (spec.workspace.existing) is being deleted`,
      stalled: true,
    };
  }
  return { use: true };
}

/** WorkspaceReady once a Pod has it mounted; pending while the claim waits for its volume. */
export function claimReadiness(
  name: string,
  claim: V1PersistentVolumeClaim | undefined,
  mounted: boolean,
): { ready: boolean; reason: ConditionReason; message: string } {
  if (mounted) {
    return {
      ready: true,
      reason: ConditionReason.WorkspaceBound,
      message: `PVC ${name} is bound and mounted`,
    };
  }
  const phase = claim?.status?.phase ?? "Pending";
  return {
    ready: false,
    reason: ConditionReason.WorkspacePending,
    message:
      phase === "Bound"
        ? `PVC ${name} is bound; the pod mounting it is starting`
        : `PVC ${name} is ${phase} (a class that binds on first use waits for the pod)`,
  };
}

/** The workspace's volume and mount, when the sandbox has one. */
export function workspaceVolume(
  sandbox: Sandbox,
): { volume: V1Volume; mount: V1VolumeMount } | undefined {
  if (!sandbox.spec.workspace) return undefined;
  return {
    volume: {
      name: WORKSPACE_VOLUME,
      persistentVolumeClaim: { claimName: workspaceClaimName(sandbox) },
    },
    mount: { name: WORKSPACE_VOLUME, mountPath: workspaceMountPath(sandbox.spec) },
  };
}

/**
 * Secrets and ConfigMaps as read-only files. `readOnly: true` on the mount
 * makes it a read-only bind mount (a write is EROFS), not just files without
 * the write bit; Secrets are 0440 with the Pod's fsGroup, ConfigMaps 0444.
 * Host paths are the docker backend's: refused before this is built.
 */
export function extraMounts(mounts: readonly Mount[] | undefined): {
  volumes: V1Volume[];
  mounts: V1VolumeMount[];
} {
  const volumes: V1Volume[] = [];
  const volumeMounts: V1VolumeMount[] = [];
  (mounts ?? []).forEach((m, i) => {
    const name = `mount-${i}`;
    if (m.secret) {
      volumes.push({
        name,
        secret: { secretName: m.secret.name, optional: m.secret.optional, defaultMode: 0o440 },
      });
    } else if (m.configMap) {
      volumes.push({
        name,
        configMap: { name: m.configMap.name, optional: m.configMap.optional, defaultMode: 0o444 },
      });
    } else {
      return;
    }
    volumeMounts.push({ name, mountPath: m.mountPath, readOnly: true });
  });
  return { volumes, mounts: volumeMounts };
}

/** The first mount the pod backend cannot make (a docker host path), for an Unsupported condition. */
export function unsupportedMount(mounts: readonly Mount[] | undefined): Mount | undefined {
  return (mounts ?? []).find((m) => m.hostPath);
}
