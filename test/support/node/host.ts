// Host commands for the test node, and the checks that say whether this host
// can run a kubelet at all (make run falls back to kwok when it cannot).
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";

/** Run a command, return its stdout; throws with its stderr on failure. */
export function sh(cmd: string, args: string[], input?: string): string {
  try {
    return execFileSync(cmd, args, {
      encoding: "utf8",
      input,
      stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      maxBuffer: 64 * 2 ** 20,
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(" ")}: ${e.stderr?.trim() || e.message}`);
  }
}

/** Like sh, but a failure is an answer (undefined), not an error. */
export function trySh(cmd: string, args: string[]): string | undefined {
  try {
    return sh(cmd, args);
  } catch {
    return undefined;
  }
}

/** A command inside the node's network namespace only (the mount namespace stays the host's). */
export function inNetns(netns: string, cmd: string, args: string[]): string {
  return sh("nsenter", [`--net=/run/netns/${netns}`, "--", cmd, ...args]);
}

/** cgroup v1 controllers the kubelet needs (cgroupfs driver, v1 hierarchy as this VM mounts it). */
export const CGROUP_V1_CONTROLLERS = [
  "cpu",
  "cpuacct",
  "cpuset",
  "memory",
  "devices",
  "freezer",
  "blkio",
  "pids",
  "systemd",
] as const;

/** Host tools the node runs; all Debian packages that hack/system-deps.sh installs. */
const TOOLS = [
  ["containerd", "containerd"],
  ["containerd-shim-runc-v2", "containerd"],
  ["ctr", "containerd"],
  ["runc", "runc"],
  ["ipset", "ipset"],
  ["iptables", "iptables"],
  ["nsenter", "util-linux"],
] as const;

export const CNI_BIN_DIR = "/usr/lib/cni";

/** Why a kubelet cannot run here, or undefined when it can. */
export function nodeUnavailableReason(): string | undefined {
  if (process.platform !== "linux") return `not Linux (${process.platform})`;
  if (process.getuid?.() !== 0)
    return "not root (a kubelet needs root for cgroups, mounts and netns)";
  for (const c of ["cpu", "cpuset", "memory", "pids"]) {
    if (
      !existsSync(`/sys/fs/cgroup/${c}/cgroup.procs`) &&
      !existsSync("/sys/fs/cgroup/cgroup.controllers")
    ) {
      return `no cgroup ${c} controller mounted under /sys/fs/cgroup`;
    }
  }
  if (existsSync("/sys/fs/cgroup/cgroup.controllers")) {
    // Pure cgroup v2 would work for the kubelet but is not what this harness sets up.
    return "cgroup v2 (unified) host: the test node is configured for the cgroup v1 hierarchy";
  }
  for (const [tool, pkg] of TOOLS) {
    if (!trySh("sh", ["-c", `command -v ${tool}`]))
      return `${tool} missing (Debian package ${pkg}; make system-deps)`;
  }
  for (const plugin of ["bridge", "host-local", "loopback", "portmap"]) {
    if (!existsSync(`${CNI_BIN_DIR}/${plugin}`)) {
      return `CNI plugin ${plugin} missing in ${CNI_BIN_DIR} (containernetworking-plugins; make system-deps)`;
    }
  }
  if (!readFileSync("/proc/filesystems", "utf8").includes("overlay")) return "no overlayfs";
  return undefined;
}
