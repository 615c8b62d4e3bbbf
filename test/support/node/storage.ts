// Storage for the real node: a local-path provisioner (hack/storage/local-path,
// on sig-storage-lib-external-provisioner) beside the kubelet, and its
// StorageClass `local-path` (the default class). A PVC of the class binds once a
// Pod that mounts it is scheduled (WaitForFirstConsumer): the provisioner makes
// a directory under the node's directory and a `local` PV pinned to the node;
// the kubelet bind-mounts it into the Pod. Stopping the node removes the
// directories with the node's directory.
//
// No CSI driver runs here (the module proxy refuses csi-driver-host-path and
// external-provisioner), so the class has no VolumeSnapshotClass: snapshots of
// its volumes are unsupported, and the provisioner refuses claims with a data source.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { REPO_ROOT } from "../paths.js";
import type { Started } from "../processes.js";
import { inNode, type NodeFiles } from "./components.js";

/** The node's StorageClass and the provisioner name it names. */
export const LOCAL_PATH_CLASS = "local-path";
export const LOCAL_PATH_PROVISIONER = "sandboxing.dev/local-path";

/** Directory holding the provisioner: built (or cached) by hack/storage/build.sh. */
export function storageBinDir(): string {
  return execFileSync("bash", [join(REPO_ROOT, "hack/storage/build.sh")], {
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
