// Snapshots of a pod-backend workspace: a CSI VolumeSnapshot
// (snapshot.storage.k8s.io/v1, external-snapshotter) of the workspace PVC, in
// a VolumeSnapshotClass of the same CSI driver as the PVC's StorageClass. A
// class whose provisioner has no VolumeSnapshotClass (a local-path
// provisioner, an in-tree plugin), or a cluster without the VolumeSnapshot
// API, cannot snapshot: that is a condition (SnapshotUnsupported) naming the
// class, not a failure of the operator. Pure builders and judgements here;
// the backend reads and writes.
import type { V1ObjectMeta } from "@kubernetes/client-node";
import { API_VERSION } from "../../api/group.js";
import { Labels, MANAGED_BY } from "../../api/labels.js";
import { parseQuantity } from "../../api/quantity.js";
import { VOLUME_SNAPSHOT_GROUP } from "./workspace.js";

export const VOLUME_SNAPSHOT_VERSION = "v1";
export const VOLUME_SNAPSHOT_API_VERSION = `${VOLUME_SNAPSHOT_GROUP}/${VOLUME_SNAPSHOT_VERSION}`;
/** The annotation marking the default VolumeSnapshotClass of a driver. */
export const DEFAULT_SNAPSHOT_CLASS_ANNOTATION = "snapshot.storage.kubernetes.io/is-default-class";

export interface VolumeSnapshotClass {
  metadata?: V1ObjectMeta;
  driver: string;
  deletionPolicy?: string;
}

export interface VolumeSnapshot {
  apiVersion?: string;
  kind?: string;
  metadata?: V1ObjectMeta;
  spec?: {
    volumeSnapshotClassName?: string;
    source?: { persistentVolumeClaimName?: string; volumeSnapshotContentName?: string };
  };
  status?: {
    readyToUse?: boolean;
    restoreSize?: string;
    boundVolumeSnapshotContentName?: string;
    creationTime?: string;
    error?: { message?: string; time?: string };
  };
}

/**
 * The VolumeSnapshotClass to snapshot a volume of `driver` with: the driver's
 * default class, else its only class; undefined when the driver has none (or
 * several with no default: which to use is for someone to decide).
 */
export function snapshotClassFor(
  driver: string,
  classes: readonly VolumeSnapshotClass[],
): VolumeSnapshotClass | undefined {
  const mine = classes.filter((c) => c.driver === driver);
  const byDefault = mine.filter(
    (c) => c.metadata?.annotations?.[DEFAULT_SNAPSHOT_CLASS_ANNOTATION] === "true",
  );
  if (byDefault.length === 1) return byDefault[0];
  return mine.length === 1 ? mine[0] : undefined;
}

/** Name of the VolumeSnapshot of a SandboxSnapshot (same namespace). */
export function volumeSnapshotName(snapshotName: string): string {
  return `sbx-${snapshotName}`;
}

/**
 * The VolumeSnapshot of a SandboxSnapshot: owned by it (controller), so
 * deleting the SandboxSnapshot deletes the VolumeSnapshot, and with a class
 * whose deletionPolicy is Delete, the copy itself.
 */
export function desiredVolumeSnapshot(opts: {
  snapshot: { name: string; namespace: string; uid: string; kind: string };
  claimName: string;
  className: string;
}): VolumeSnapshot {
  const { snapshot } = opts;
  return {
    apiVersion: VOLUME_SNAPSHOT_API_VERSION,
    kind: "VolumeSnapshot",
    metadata: {
      name: volumeSnapshotName(snapshot.name),
      namespace: snapshot.namespace,
      labels: { [Labels.managedBy]: MANAGED_BY, [Labels.component]: "snapshot" },
      ownerReferences: [
        {
          apiVersion: API_VERSION,
          kind: snapshot.kind,
          name: snapshot.name,
          uid: snapshot.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      volumeSnapshotClassName: opts.className,
      source: { persistentVolumeClaimName: opts.claimName },
    },
  };
}

/** Where a VolumeSnapshot stands: ready (with its size), failed (with the driver's words), or on its way. */
export type VolumeSnapshotState =
  | { state: "ready"; sizeBytes?: number; readyAt?: string }
  | { state: "failed"; message: string }
  | { state: "pending"; message: string };

export function volumeSnapshotState(vs: VolumeSnapshot): VolumeSnapshotState {
  const status = vs.status ?? {};
  if (status.readyToUse) {
    return {
      state: "ready",
      sizeBytes: status.restoreSize ? quantityBytes(status.restoreSize) : undefined,
      readyAt: status.creationTime,
    };
  }
  // external-snapshotter retries a failed CreateSnapshot and keeps the last
  // error here; a snapshot with an error and no content will not get one.
  if (status.error?.message && !status.boundVolumeSnapshotContentName) {
    return { state: "failed", message: status.error.message };
  }
  return {
    state: "pending",
    message: status.error?.message ?? `VolumeSnapshot ${vs.metadata?.name} is being taken`,
  };
}

/** Bytes of a storage quantity ("1Gi", "4194304"); undefined when it cannot say. */
export function quantityBytes(q: string): number | undefined {
  try {
    const bytes = Math.round(parseQuantity(q));
    return Number.isSafeInteger(bytes) && bytes >= 0 ? bytes : undefined;
  } catch {
    return undefined;
  }
}
