// Storage for the real node, built by hack/storage/build.sh:
//
// - `local-path` (the default StorageClass): a provisioner on
//   sig-storage-lib-external-provisioner beside the kubelet. A PVC binds once a
//   Pod that mounts it is scheduled (WaitForFirstConsumer) to a directory under
//   the node's directory, as a `local` PV pinned to the node. No snapshots: the
//   class has no VolumeSnapshotClass, and a claim with a data source is refused.
// - `csi-hostpath` (NodeOptions.csi): a CSI driver of our own (hack/storage/
//   csi-hostpath: directories as CSI volumes, snapshots as tar archives; it
//   registers with the kubelet and provisions its class itself, standing in for
//   csi-driver-host-path, node-driver-registrar and external-provisioner, which
//   the module proxy here refuses), external-snapshotter's csi-snapshotter
//   sidecar and snapshot-controller, the VolumeSnapshot CRDs and a
//   VolumeSnapshotClass `csi-hostpath`. A PVC whose dataSource is a ready
//   VolumeSnapshot of the driver starts with the snapshot's content.
//
// Stopping the node removes the directories with the node's directory.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { installCRDs, readCRDs } from "../../../src/api/crd/install.js";
import { REPO_ROOT } from "../paths.js";
import type { Started } from "../processes.js";
import { inNode, type NodeFiles } from "./components.js";

/** The node's StorageClass and the provisioner name it names. */
export const LOCAL_PATH_CLASS = "local-path";
export const LOCAL_PATH_PROVISIONER = "sandboxing.dev/local-path";
/** The CSI driver, its StorageClass and its VolumeSnapshotClass (NodeOptions.csi). */
export const CSI_DRIVER = "hostpath.csi.sandboxing.dev";
export const CSI_CLASS = "csi-hostpath";
export const CSI_SNAPSHOT_CLASS = "csi-hostpath";

/**
 * Directory holding storage binaries, built (or cached) by hack/storage/build.sh:
 * the local-path provisioner (`local`), or the CSI driver and external-snapshotter (`csi`).
 */
export function storageBinDir(what: "local" | "csi"): string {
  return execFileSync("bash", [join(REPO_ROOT, "hack/storage/build.sh"), what], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
}

/** Where the node's volumes live on the host. */
export function localPathRoot(nodeDir: string): string {
  return join(nodeDir, "local-path");
}

export function startLocalPath(f: NodeFiles, storageBin: string): Started {
  return inNode(f, "local-path", join(storageBin, "local-path"), [
    `--kubeconfig=${f.kubeconfig}`,
    `--name=${LOCAL_PATH_PROVISIONER}`,
    `--node=${f.name}`,
    `--root=${localPathRoot(f.dir)}`,
    "--v=1",
  ]);
}

/** The class every node's provisioner serves; a second node finds it there. */
export async function ensureLocalPathClass(kc: k8s.KubeConfig): Promise<void> {
  const storage = kc.makeApiClient(k8s.StorageV1Api);
  await storage
    .createStorageClass({
      body: {
        metadata: {
          name: LOCAL_PATH_CLASS,
          annotations: { "storageclass.kubernetes.io/is-default-class": "true" },
        },
        provisioner: LOCAL_PATH_PROVISIONER,
        reclaimPolicy: "Delete",
        // The directory is made on the node the scheduler picked for the first Pod.
        volumeBindingMode: "WaitForFirstConsumer",
        allowVolumeExpansion: false,
      },
    })
    .catch((err: unknown) => {
      if ((err as { code?: number }).code !== 409) throw err;
    });
}

/** The CSI driver's sockets (short: a unix socket path has at most 107 bytes). */
function csiSockets(f: NodeFiles) {
  return {
    endpoint: join(f.dir, "csi", "csi.sock"),
    registry: join(f.dir, "kubelet", "plugins_registry"),
  };
}

/** Where the driver keeps volumes/ and snapshots/ on the host. */
export function csiRoot(nodeDir: string): string {
  return join(nodeDir, "csi-hostpath");
}

/** The node's own CSI driver process (one per node). */
export function startCsiHostpath(f: NodeFiles, storageBin: string): Started {
  const { endpoint, registry } = csiSockets(f);
  return inNode(f, "csi-hostpath", join(storageBin, "csi-hostpath"), [
    `--kubeconfig=${f.kubeconfig}`,
    `--driver=${CSI_DRIVER}`,
    `--node=${f.name}`,
    `--root=${csiRoot(f.dir)}`,
    `--endpoint=${endpoint}`,
    `--kubelet-registry=${registry}`,
    "--v=1",
  ]);
}

/**
 * Cluster-wide snapshot machinery, for the first node only: the CRDs, the
 * CSIDriver and classes, snapshot-controller, and csi-snapshotter (a
 * controller sidecar; one is enough while one node runs the driver's snapshots).
 */
export async function startSnapshotting(
  kc: k8s.KubeConfig,
  f: NodeFiles,
  storageBin: string,
): Promise<Started[]> {
  await installCRDs(kc, readCRDs(join(storageBin, "crds")));
  const storage = kc.makeApiClient(k8s.StorageV1Api);
  const objects = kc.makeApiClient(k8s.CustomObjectsApi);
  const ignoreExists = (err: unknown) => {
    if ((err as { code?: number }).code !== 409) throw err;
  };
  await storage
    .createCSIDriver({
      body: {
        metadata: { name: CSI_DRIVER },
        // No ControllerPublish: the kubelet mounts without waiting for an attachment.
        spec: { attachRequired: false, podInfoOnMount: false, fsGroupPolicy: "None" },
      },
    })
    .catch(ignoreExists);
  await storage
    .createStorageClass({
      body: {
        metadata: { name: CSI_CLASS },
        provisioner: CSI_DRIVER,
        reclaimPolicy: "Delete",
        volumeBindingMode: "WaitForFirstConsumer",
      },
    })
    .catch(ignoreExists);
  await objects
    .createClusterCustomObject({
      group: "snapshot.storage.k8s.io",
      version: "v1",
      plural: "volumesnapshotclasses",
      body: {
        apiVersion: "snapshot.storage.k8s.io/v1",
        kind: "VolumeSnapshotClass",
        metadata: { name: CSI_SNAPSHOT_CLASS },
        driver: CSI_DRIVER,
        deletionPolicy: "Delete",
      },
    })
    .catch(ignoreExists);
  const { endpoint } = csiSockets(f);
  return [
    inNode(f, "snapshot-controller", join(storageBin, "snapshot-controller"), [
      `--kubeconfig=${f.kubeconfig}`,
      "--leader-election=false",
      "--v=1",
    ]),
    inNode(f, "csi-snapshotter", join(storageBin, "csi-snapshotter"), [
      `--kubeconfig=${f.kubeconfig}`,
      `--csi-address=${endpoint}`,
      "--leader-election=false",
      "--v=1",
    ]),
  ];
}
