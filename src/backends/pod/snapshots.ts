// Taking a SandboxSnapshot on the pod backend (./volume-snapshot.ts decides):
// a CSI VolumeSnapshot of the sandbox's workspace PVC, owned by the
// SandboxSnapshot. What the SandboxSnapshot controller calls; idempotent (the
// VolumeSnapshot's name is the SandboxSnapshot's), so a restart at any point
// finds what was made and reports where it stands.
//
// Whether a workspace can be snapshotted is the storage's answer, asked each
// time (nothing cached): its StorageClass's provisioner must be a CSI driver
// with a VolumeSnapshotClass. A local-path class, or a cluster without the
// VolumeSnapshot API, gets SnapshotUnsupported naming the class and driver.
import * as k8s from "@kubernetes/client-node";
import type { Sandbox } from "../../api/sandbox.js";
import { SnapshotReason } from "../../api/snapshot-conditions.js";
import { KindClient } from "../../controller/kind-client.js";
import { ignoreNotFound, isConflictError, isNotFoundError } from "../errors.js";
import {
  desiredVolumeSnapshot,
  snapshotClassFor,
  VOLUME_SNAPSHOT_VERSION,
  type VolumeSnapshot,
  type VolumeSnapshotClass,
  volumeSnapshotName,
  volumeSnapshotState,
} from "./volume-snapshot.js";
import { VOLUME_SNAPSHOT_GROUP, workspaceClaimName } from "./workspace.js";

export interface SnapshotRef {
  namespace: string;
  name: string;
  uid: string;
}

/** Where a snapshot stands, in the SandboxSnapshot's words. */
export type PodSnapshotOutcome =
  | {
      phase: "Ready";
      handle: string;
      sourceWorkspace: string;
      sizeBytes?: number;
      readyAt?: string;
    }
  | { phase: "Pending"; reason: SnapshotReason; message: string; handle?: string }
  | { phase: "Failed"; reason: SnapshotReason; message: string };

export class PodSnapshots {
  private readonly claims: KindClient<k8s.V1PersistentVolumeClaim>;
  private readonly volumeSnapshots: KindClient<VolumeSnapshot>;
  private readonly storage: k8s.StorageV1Api;
  private readonly objects: k8s.CustomObjectsApi;

  constructor(kc: k8s.KubeConfig) {
    this.claims = new KindClient(kc, {
      group: "",
      version: "v1",
      plural: "persistentvolumeclaims",
    });
    this.volumeSnapshots = new KindClient(kc, {
      group: VOLUME_SNAPSHOT_GROUP,
      version: VOLUME_SNAPSHOT_VERSION,
      plural: "volumesnapshots",
    });
    this.storage = kc.makeApiClient(k8s.StorageV1Api);
    this.objects = kc.makeApiClient(k8s.CustomObjectsApi);
  }

  /** Take (or look at) the snapshot `ref` of `sandbox`'s workspace. */
  async take(
    ref: SnapshotRef,
    sandbox: Sandbox,
    signal?: AbortSignal,
  ): Promise<PodSnapshotOutcome> {
    if (!sandbox.spec.workspace) {
      return {
        phase: "Failed",
        reason: SnapshotReason.NoWorkspace,
        message: `sandbox ${sandbox.metadata.name} has no spec.workspace: nothing persistent to copy`,
      };
    }
    const name = volumeSnapshotName(ref.name);
    const existing = await ignoreNotFound(this.volumeSnapshots.read(name, ref.namespace, signal));
    if (existing) return this.outcome(existing, workspaceClaimName(sandbox));

    const claimName = workspaceClaimName(sandbox);
    const claim = await ignoreNotFound(this.claims.read(claimName, ref.namespace, signal));
    if (!claim) {
      return {
        phase: "Pending",
        reason: SnapshotReason.Creating,
        message: `waiting for the workspace PVC ${claimName}`,
      };
    }
    const className = claim.spec?.storageClassName;
    const sc = className
      ? await ignoreNotFound(this.storage.readStorageClass({ name: className }))
      : undefined;
    if (!sc) {
      return {
        phase: "Failed",
        reason: SnapshotReason.SnapshotUnsupported,
        message: `PVC ${claimName} has no StorageClass this operator can read (${className ?? "none"}): no CSI driver to snapshot it with`,
      };
    }
    const classes = await this.snapshotClasses();
    if (!classes) {
      return {
        phase: "Failed",
        reason: SnapshotReason.SnapshotUnsupported,
        message: `the cluster has no VolumeSnapshot API (${VOLUME_SNAPSHOT_GROUP}): PVC ${claimName} of class ${sc.metadata?.name} cannot be snapshotted`,
      };
    }
    const cls = snapshotClassFor(sc.provisioner, classes);
    if (!cls) {
      return {
        phase: "Failed",
        reason: SnapshotReason.SnapshotUnsupported,
        message: `StorageClass ${sc.metadata?.name} (provisioner ${sc.provisioner}) has no VolumeSnapshotClass: its volumes cannot be snapshotted`,
      };
    }
    const desired = desiredVolumeSnapshot({
      snapshot: { ...ref, kind: "SandboxSnapshot" },
      claimName,
      className: cls.metadata!.name!,
    });
    try {
      return this.outcome(
        await this.volumeSnapshots.create(ref.namespace, desired, signal),
        claimName,
      );
    } catch (err) {
      if (!isConflictError(err)) throw err;
      return this.outcome(await this.volumeSnapshots.read(name, ref.namespace, signal), claimName);
    }
  }

  private outcome(vs: VolumeSnapshot, claimName: string): PodSnapshotOutcome {
    const handle = vs.metadata!.name!;
    const state = volumeSnapshotState(vs);
    if (state.state === "ready") {
      return {
        phase: "Ready",
        handle,
        sourceWorkspace: claimName,
        sizeBytes: state.sizeBytes,
        readyAt: state.readyAt,
      };
    }
    if (state.state === "failed") {
      return { phase: "Failed", reason: SnapshotReason.SnapshotFailed, message: state.message };
    }
    return { phase: "Pending", reason: SnapshotReason.Creating, message: state.message, handle };
  }

  /** The cluster's VolumeSnapshotClasses; undefined without the VolumeSnapshot API. */
  private async snapshotClasses(): Promise<VolumeSnapshotClass[] | undefined> {
    try {
      const list = (await this.objects.listClusterCustomObject({
        group: VOLUME_SNAPSHOT_GROUP,
        version: VOLUME_SNAPSHOT_VERSION,
        plural: "volumesnapshotclasses",
      })) as { items?: VolumeSnapshotClass[] };
      return list.items ?? [];
    } catch (err) {
      if (isNotFoundError(err)) return undefined;
      throw err;
    }
  }
}
