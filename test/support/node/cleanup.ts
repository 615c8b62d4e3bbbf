// Stopping the node leaves nothing behind on the host. The sweep works from
// what the node recorded when it started (state.json), so it also cleans up
// after a run that was killed too hard to stop its node (the next start reaps
// it), and `leftovers` lists whatever is still there, for the test that proves
// the sweep complete.
import {
  existsSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  statSync,
} from "node:fs";
import { join } from "node:path";
import { CGROUP_V1_CONTROLLERS, trySh } from "./host.js";
import {
  deleteNetwork,
  hostFirewallMentions,
  type NodeNetwork,
  networkLeftovers,
} from "./network.js";

export interface NodeState {
  /** PID of the process that owns the node (test runner, make run). */
  owner: number;
  name: string;
  dir: string;
  cgroupRoot: string;
  containerdRoot: string;
  containerdSocket: string;
  net: NodeNetwork;
  /** Host sysctls the kubelet sets (its kernel tunables), with their values before. */
  sysctls: Record<string, string>;
}

const CGROUP_HIERARCHIES = [...CGROUP_V1_CONTROLLERS, "unified"];

/** Processes of the node: in its network namespace (components, shims) or its cgroup tree (containers). */
export function nodeProcesses(s: NodeState): number[] {
  const pids: number[] = [];
  const netnsFile = `/run/netns/${s.net.netns}`;
  const netns = existsSync(netnsFile) ? `net:[${statSync(netnsFile).ino}]` : undefined;
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!pid || pid === process.pid) continue;
    try {
      // A zombie holds nothing but its PID: when the shim that would reap a
      // container is gone, PID 1 does, in its own time.
      if (/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"))) continue;
      const cgroups = readFileSync(`/proc/${pid}/cgroup`, "utf8");
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      const inTree = cgroups
        .split("\n")
        .some((l) => l.split(":")[2]?.startsWith(`${s.cgroupRoot}/`));
      const inNetns = netns !== undefined && readlinkSync(`/proc/${pid}/ns/net`) === netns;
      if (inTree || inNetns || cmdline.includes(s.containerdSocket)) {
        pids.push(pid);
      }
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** Mount points under the node's directories, deepest first. */
export function nodeMounts(s: NodeState): string[] {
  const roots = [s.dir, s.containerdRoot].map((r) => `${r}/`);
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4]?.replace(/\\040/g, " "))
    .filter((m): m is string => !!m && roots.some((r) => `${m}/`.startsWith(r)))
    .sort((a, b) => b.length - a.length);
}

export function nodeCgroups(s: NodeState): string[] {
  return CGROUP_HIERARCHIES.map((h) => `/sys/fs/cgroup/${h}${s.cgroupRoot}`).filter((d) =>
    existsSync(d),
  );
}

function removeCgroupTree(dir: string): void {
  for (const entry of readdirSync(dir)) {
    const child = join(dir, entry);
    if (statSync(child).isDirectory()) removeCgroupTree(child);
  }
  rmdirSync(dir);
}

async function waitGone(pids: number[], ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  let alive = pids;
  while (alive.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    alive = alive.filter(
      (pid) =>
        existsSync(`/proc/${pid}`) &&
        !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8")),
    );
  }
  return alive;
}

/** Kill, unmount, remove: everything the node made on the host. Throws when something stays. */
export async function sweep(s: NodeState): Promise<void> {
  for (let round = 0; round < 3; round++) {
    const pids = nodeProcesses(s);
    if (!pids.length) break;
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    await waitGone(pids, 5000);
  }
  for (const m of nodeMounts(s)) {
    if (trySh("umount", [m]) === undefined) trySh("umount", ["-l", m]);
  }
  for (const dir of nodeCgroups(s)) {
    try {
      removeCgroupTree(dir);
    } catch {
      // reported by leftovers below
    }
  }
  deleteNetwork(s.net);
  restoreSysctls(s);
  const left = leftovers(s);
  if (left.length) throw new Error(`node ${s.name} left behind:\n  ${left.join("\n  ")}`);
  rmSync(s.dir, { recursive: true, force: true });
}

/** The kubelet's kernel tunables are host-wide: put back what was there, unless someone changed them since. */
function restoreSysctls(s: NodeState): void {
  for (const [key, before] of Object.entries(s.sysctls)) {
    const path = `/proc/sys/${key.replaceAll(".", "/")}`;
    if (
      KUBELET_SYSCTLS[key] !== undefined &&
      readFileSync(path, "utf8").trim() === KUBELET_SYSCTLS[key]
    ) {
      trySh("sysctl", ["-qw", `${key}=${before}`]);
    }
  }
}

/** What the kubelet writes at start-up (pkg/kubelet/cm: setupKernelTunables) when they differ. */
export const KUBELET_SYSCTLS: Record<string, string> = {
  "vm.overcommit_memory": "1",
  "vm.panic_on_oom": "0",
  "kernel.panic": "10",
  "kernel.panic_on_oops": "1",
  "kernel.keys.root_maxkeys": "1000000",
  "kernel.keys.root_maxbytes": "25000000",
};

export function leftovers(s: NodeState): string[] {
  const left: string[] = [];
  for (const pid of nodeProcesses(s)) {
    left.push(`process ${pid} ${trySh("cat", [`/proc/${pid}/comm`])?.trim() ?? ""}`);
  }
  for (const m of nodeMounts(s)) left.push(`mount ${m}`);
  for (const c of nodeCgroups(s)) left.push(`cgroup ${c}`);
  left.push(...networkLeftovers(s.net));
  for (const line of hostFirewallMentions(s.net, [s.net.netns]))
    left.push(`host firewall: ${line}`);
  for (const [key, before] of Object.entries(s.sysctls)) {
    const now = readFileSync(`/proc/sys/${key.replaceAll(".", "/")}`, "utf8").trim();
    if (now !== before && now === KUBELET_SYSCTLS[key])
      left.push(`sysctl ${key}=${now} (was ${before})`);
  }
  return left;
}

/** Sweep the nodes of runs that are gone (their owner PID is dead). */
export async function reapStaleNodes(base: string): Promise<void> {
  if (!existsSync(base)) return;
  for (const entry of readdirSync(base)) {
    const stateFile = join(base, entry, "state.json");
    if (!existsSync(stateFile)) continue;
    const s = JSON.parse(readFileSync(stateFile, "utf8")) as NodeState;
    if (existsSync(`/proc/${s.owner}`)) continue;
    await sweep(s).catch((err) => process.stderr.write(`reaping stale node ${s.name}: ${err}\n`));
  }
}
