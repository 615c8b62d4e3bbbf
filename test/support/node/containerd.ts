// A private containerd for the test node: its own root, state and socket, so it
// never meets dockerd's containerd (/run/containerd, /var/lib/containerd or
// /var/run/docker/containerd). Debian's containerd 1.6 with runc 1.1: the
// packages docker.io already pulls in on this host, and enough for kubelet 1.34,
// which needs the CRI v1 API (containerd >= 1.6; 1.x support is deprecated and
// goes in Kubernetes 1.36, when a built containerd 2.x will be needed).
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Started, startProcess } from "../processes.js";
import { CNI_BIN_DIR, sh, trySh } from "./host.js";
import type { NodeNetwork } from "./network.js";

export const K8S_NAMESPACE = "k8s.io";

export interface ContainerdPaths {
  root: string;
  state: string;
  socket: string;
  cniConfDir: string;
  cniDataDir: string;
}

export function containerdPaths(dir: string, root: string): ContainerdPaths {
  return {
    root,
    state: join(dir, "containerd-state"),
    socket: join(dir, "containerd.sock"),
    cniConfDir: join(dir, "cni"),
    cniDataDir: join(dir, "cni-ipam"),
  };
}

function config(p: ContainerdPaths, pauseImage: string): string {
  return `version = 2
root = "${p.root}"
state = "${p.state}"

[grpc]
  address = "${p.socket}"

[ttrpc]
  address = ""

[debug]
  address = ""

[metrics]
  address = ""

# Plugins the node does not use: fewer things to initialise, nothing that could
# reach beyond this node.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${pauseImage}"
  # Pod network namespaces under this instance's state, not the host's /run/netns.
  netns_mounts_under_state_dir = true
  # This VM mounts no hugetlb hierarchy.
  tolerate_missing_hugetlb_controller = true
  # Root here lacks CAP_SYS_RESOURCE (the VM withholds it), so no process may
  # lower its OOM score: the kubelet asks for -998 (pause) and -997
  # (Guaranteed), and runc fails ("can't get final child's PID from pipe").
  # Clamp every container's oom_score_adj at containerd's own instead.
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # No systemd here (PID 1 is the VM's agent): the kubelet's cgroupfs driver.
        SystemdCgroup = false
        Root = "${join(p.state, "runc")}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${CNI_BIN_DIR}"
    conf_dir = "${p.cniConfDir}"
    max_conf_num = 1

[plugins."io.containerd.internal.v1.opt"]
  path = "${join(p.root, "opt")}"
`;
}

/** bridge + host-local + portmap (+ loopback, which containerd runs for every Pod). */
function cniConfig(net: NodeNetwork, p: ContainerdPaths): string {
  return JSON.stringify(
    {
      cniVersion: "1.0.0",
      name: "sbxnode",
      plugins: [
        {
          type: "bridge",
          bridge: "cni0",
          isGateway: true,
          // No masquerade: nothing leaves this node for the outside.
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: "host-local",
            ranges: [[{ subnet: net.podCidr, gateway: net.podGateway }]],
            routes: [{ dst: "0.0.0.0/0" }],
            dataDir: p.cniDataDir,
          },
        },
        { type: "portmap", capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  );
}

export async function startContainerd(
  dir: string,
  p: ContainerdPaths,
  net: NodeNetwork,
  pauseImage: string,
): Promise<Started> {
  for (const d of [p.root, p.state, p.cniConfDir, p.cniDataDir]) mkdirSync(d, { recursive: true });
  writeFileSync(join(p.cniConfDir, "10-sbxnode.conflist"), cniConfig(net, p));
  const configPath = join(dir, "containerd.toml");
  writeFileSync(configPath, config(p, pauseImage));
  const proc = startProcess(
    "containerd",
    "nsenter",
    [
      `--net=/run/netns/${net.netns}`,
      "--",
      "containerd",
      "--config",
      configPath,
      "--log-level",
      "warn",
    ],
    dir,
  );
  const deadline = Date.now() + 30_000;
  while (!(existsSync(p.socket) && trySh("ctr", ["--address", p.socket, "version"]))) {
    if (proc.child.exitCode !== null)
      throw new Error(`containerd exited with ${proc.child.exitCode} (see ${proc.logPath})`);
    if (Date.now() > deadline)
      throw new Error(`containerd did not answer within 30 s (see ${proc.logPath})`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return proc;
}

export function ctr(p: Pick<ContainerdPaths, "socket">, args: string[], input?: string): string {
  return sh("ctr", ["--address", p.socket, "--namespace", K8S_NAMESPACE, ...args], input);
}
