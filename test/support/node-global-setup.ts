// The `node` test project: one control plane and one real node (kubelet,
// containerd, CNI, kube-proxy, kube-router) for the whole run; tests isolate
// themselves in namespaces of their own. Start-up is timed and printed. The
// operator and sandbox-basic images come from the local Docker engine (built
// here when missing, under the shared Docker lock).
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { startControlPlane } from "./control-plane.js";
import { OPERATOR_IMAGE, SANDBOX_IMAGE } from "./docker.js";
import { NODE_CONTROLLERS, nodeUnavailableReason, startNode } from "./node/index.js";
import { STANDIN_DNS } from "./node/standins.js";
import { REPO_ROOT } from "./paths.js";

declare module "vitest" {
  export interface ProvidedContext {
    nodeName: string;
    nodeNetns: string;
    nodePodCidr: string;
    /** The host's address on the node's link: Pods reach host processes (the test's controller) here. */
    nodeHostIp: string;
    nodeDir: string;
    nodeBinDir: string;
    nodeContainerd: { socket: string; root: string };
    /** Whether the node runs the CSI hostpath driver with VolumeSnapshots (unless SANDBOX_NODE_CSI=0). */
    nodeCsi: boolean;
    /** What a test needs to start a node of its own (see NodeControlPlane). */
    controlPlane: { server: string; dir: string; adminToken: string; kubeletClientCaPath: string };
  }
}

export default async function setup(project: TestProject) {
  const reason = nodeUnavailableReason();
  if (reason) throw new Error(`the node project needs a host that can run a kubelet: ${reason}`);
  const began = performance.now();
  // `make test` builds the images first; a direct vitest run builds them when
  // missing (under the lock every test that drives dockerd takes).
  const present = (image: string) => {
    try {
      execFileSync("docker", ["image", "inspect", image], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  };
  if (!present(OPERATOR_IMAGE) || !present(SANDBOX_IMAGE)) {
    execFileSync(
      "flock",
      ["/tmp/sbx-docker.lock", "bash", join(REPO_ROOT, "hack/images/build-all.sh")],
      {
        stdio: ["ignore", "inherit", "inherit"],
      },
    );
  }
  const imagesMs = Math.round(performance.now() - began);
  // On by default (see docs/workspaces.md); SANDBOX_NODE_CSI=0 runs the node
  // without it, and the CSI cases are then reported as skipped.
  const csi = process.env.SANDBOX_NODE_CSI !== "0";
  const cp = await startControlPlane({
    controllerManager: true,
    scheduler: true,
    crds: true,
    kubeletClient: true,
    extraControllers: NODE_CONTROLLERS,
  });
  const node = await startNode(cp, {
    images: [OPERATOR_IMAGE, SANDBOX_IMAGE],
    dnsServer: STANDIN_DNS,
    // The CSI driver and external-snapshotter (hack/storage), built by `make
    // storage-bins` (a first build takes minutes; cached afterwards).
    csi,
  }).catch(async (err) => {
    await cp.stop();
    throw err;
  });
  console.log(
    `images ready in ${imagesMs} ms; control plane up in ${Object.values(cp.timings).reduce((a, b) => a + b, 0)} ms; ` +
      `node ${node.name} Ready in ${node.timings.total} ms (${JSON.stringify(node.timings)})`,
  );
  project.provide("kubeconfigPath", cp.kubeconfigPath);
  project.provide("auditLogPath", cp.auditLogPath);
  project.provide("k8sBinDir", cp.binDir);
  project.provide("nodeName", node.name);
  project.provide("nodeCsi", csi);
  project.provide("nodeNetns", node.net.netns);
  project.provide("nodePodCidr", node.net.podCidr);
  project.provide("nodeHostIp", node.net.hostIp);
  project.provide("nodeDir", node.dir);
  project.provide("nodeBinDir", node.binDir);
  project.provide("nodeContainerd", { socket: node.containerd.socket, root: node.containerd.root });
  project.provide("controlPlane", {
    server: cp.server,
    dir: cp.dir,
    adminToken: cp.adminToken,
    kubeletClientCaPath: cp.kubeletClientCaPath!,
  });
  return async () => {
    try {
      await node.stop();
    } finally {
      await cp.stop();
    }
  };
}
