// A real node for the test control plane: a kubelet with containerd, runc, CNI,
// kube-proxy and kube-router, all in a network namespace of their own on this
// host, so the pod backend's Pods really run. Opt-in: a test project's global
// setup (test/support/node-global-setup.ts) or `make run` starts one.
//
//   const cp = await startControlPlane({ ..., kubeletClient: true });
//   const node = await startNode(cp, { images: [OPERATOR_IMAGE, SANDBOX_IMAGE] });
//   ...
//   await node.stop();            // before cp.stop(); leaves nothing behind
//
// See README "How it is tested" for the host requirements and what is set up.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server, Socket } from "node:net";
import { cpus, homedir } from "node:os";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import type { ControlPlane } from "../control-plane.js";
import { REPO_ROOT } from "../paths.js";
import type { Started } from "../processes.js";
import { KUBELET_SYSCTLS, leftovers, type NodeState, reapStaleNodes, sweep } from "./cleanup.js";
import { type NodeFiles, startKubelet, startKubeProxy, startKubeRouter } from "./components.js";
import { type ContainerdPaths, containerdPaths, ctr, startContainerd } from "./containerd.js";
import { CGROUP_V1_CONTROLLERS, inNetns, nodeUnavailableReason, trySh } from "./host.js";
import { importDockerImages, importPause, PAUSE_IMAGE } from "./images.js";
import { createNetwork, freeIndex, type NodeNetwork, networkFor, readSysctl } from "./network.js";
import {
  ensureLocalPathClass,
  startCsiHostpath,
  startLocalPath,
  startSnapshotting,
  storageBinDir,
} from "./storage.js";

export { nodeUnavailableReason } from "./host.js";

/** Controllers a control plane with real nodes needs beside the harness's own: Services' endpoints. */
export const NODE_CONTROLLERS = [
  "endpointslice-controller",
  // PVCs of the node's local-path class bind to PVs, and a deleted claim or
  // volume is let go once no Pod uses it (the apiserver's
  // StorageObjectInUseProtection admission puts those finalizers on).
  "persistentvolume-binder-controller",
  "persistentvolume-protection-controller",
  "persistentvolumeclaim-protection-controller",
];
export { LOCAL_TAG, localTagOf, PAUSE_IMAGE } from "./images.js";
export {
  CSI_CLASS,
  CSI_DRIVER,
  CSI_SNAPSHOT_CLASS,
  csiRoot,
  LOCAL_PATH_CLASS,
  LOCAL_PATH_PROVISIONER,
  localPathRoot,
} from "./storage.js";

export interface NodeOptions {
  /** Node name (default sbx-node-<id>). */
  name?: string;
  /** Images from the local Docker engine to import (`make images` builds them). */
  images?: string[];
  /** The Pods' resolver (default: nowhere; see components.ts). */
  dnsServer?: string;
  /** How long to wait for the node to register Ready (default 120 s). */
  readyTimeoutMs?: number;
  /** Taints to register with ("key=value:Effect"), e.g. to keep other tests' Pods off a second node. */
  taints?: string[];
  /**
   * Also run the CSI hostpath driver with VolumeSnapshots (storage.ts): the
   * snapshot CRDs, snapshot-controller and csi-snapshotter are cluster-wide,
   * so only one node of a control plane asks for this.
   */
  csi?: boolean;
}

/** What of the control plane a node needs (a test worker rebuilds it from provided values). */
export type NodeControlPlane = Pick<
  ControlPlane,
  "server" | "dir" | "adminToken" | "kubeletClientCaPath" | "kubeConfig"
>;

export interface RealNode {
  name: string;
  dir: string;
  net: NodeNetwork;
  binDir: string;
  containerd: ContainerdPaths;
  state: NodeState;
  /** Milliseconds each step of start-up took, and in all. */
  timings: Record<string, number>;
  /** `ctr` against the node's containerd (k8s.io namespace). */
  ctr(args: string[]): string;
  /** A command in the node's network namespace. */
  exec(cmd: string, args: string[]): string;
  /** What of the node is on the host (nothing, after stop()). */
  leftovers(): string[];
  stop(): Promise<void>;
}

/** Thrown when this host cannot run a kubelet; the message says why. */
export class NodeUnavailableError extends Error {
  override name = "NodeUnavailableError";
}

function cacheRoot(): string {
  return process.env.SANDBOX_OPERATOR_CACHE ?? join(homedir(), ".cache/sandbox-operator");
}

/** Directory holding kubelet, kube-proxy, kube-router, pause: built (or cached) by hack/k8s-bins/node. */
export function nodeBinDir(): string {
  return execFileSync("bash", [join(REPO_ROOT, "hack/k8s-bins/node/build.sh")], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
}

/**
 * containerd's root (images, snapshots) is kept between runs so imported images
 * are imported once; a second node running at the same time gets a fresh one.
 */
function containerdRoot(dir: string): string {
  const shared = join(cacheRoot(), "node-containerd");
  const owner = join(cacheRoot(), "node-containerd.owner");
  const holder = existsSync(owner) ? Number(readFileSync(owner, "utf8")) : 0;
  if (holder && holder !== process.pid && existsSync(`/proc/${holder}`))
    return join(dir, "containerd-root");
  writeFileSync(owner, String(process.pid));
  return shared;
}

function createCgroupRoot(root: string): void {
  for (const c of CGROUP_V1_CONTROLLERS) {
    const dir = `/sys/fs/cgroup/${c}${root}`;
    mkdirSync(dir, { recursive: true });
    if (c === "cpuset") {
      // A new cpuset has no CPUs or memory nodes until given its parent's.
      for (const f of ["cpuset.cpus", "cpuset.mems"]) {
        writeFileSync(join(dir, f), readFileSync(`/sys/fs/cgroup/cpuset/${f}`, "utf8"));
      }
    }
    if (c === "cpu") {
      // The kubelet gives kubepods cpu.shares for its allocatable CPUs (2048
      // here) relative to the host's other processes; nested under this root
      // at the default 1024, all the node's Pods together would weigh as one
      // host process, and on a busy machine a Pod that needs CPU to start
      // (a sandbox's egress-init and sidecar) would wait for it far longer than
      // on a real node (bench/node measured it). Weigh the root as kubepods would.
      writeFileSync(join(dir, "cpu.shares"), String(1024 * cpus().length));
    }
  }
}

/** The apiserver listens on loopback; node components reach it through the host's end of the link. */
async function apiserverRelay(
  cp: NodeControlPlane,
  host: string,
): Promise<{ server: Server; port: number }> {
  const target = new URL(cp.server);
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = new Socket();
    upstream.connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.on("close", () => {
    for (const s of sockets) s.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  const address = server.address();
  if (!address || typeof address !== "object") throw new Error("relay has no port");
  return { server, port: address.port };
}

function nodeKubeconfig(cp: NodeControlPlane, server: string): string {
  const ca = readFileSync(join(cp.dir, "certs/apiserver.crt")).toString("base64");
  // The apiserver's self-signed certificate names "kubernetes", not the link address.
  return `apiVersion: v1
kind: Config
clusters:
  - name: test
    cluster: {server: "${server}", certificate-authority-data: ${ca}, tls-server-name: kubernetes}
users:
  - name: node
    user: {token: ${cp.adminToken}}
contexts:
  - name: test
    context: {cluster: test, user: node}
current-context: test
`;
}

export async function startNode(cp: NodeControlPlane, opts: NodeOptions = {}): Promise<RealNode> {
  const reason = nodeUnavailableReason();
  if (reason) throw new NodeUnavailableError(reason);
  if (!cp.kubeletClientCaPath)
    throw new Error("startNode needs a control plane started with kubeletClient: true");
  const began = performance.now();
  const timings: Record<string, number> = {};
  const time = async <T>(step: string, fn: () => Promise<T> | T): Promise<T> => {
    const start = performance.now();
    try {
      return await fn();
    } finally {
      timings[step] = Math.round(performance.now() - start);
    }
  };

  const binDir = await time("binaries", nodeBinDir);
  const storageBin = await time("storage-binaries", () => storageBinDir("local"));
  const csiBin = opts.csi ? await time("csi-binaries", () => storageBinDir("csi")) : "";
  const base = join(cacheRoot(), "nodes");
  await time("reap", () => reapStaleNodes(base));
  const id = randomBytes(3).toString("hex");
  const dir = join(base, `${process.pid}-${id}`);
  mkdirSync(dir, { recursive: true });
  const name = opts.name ?? `sbx-node-${id}`;
  const net = networkFor(id, freeIndex());
  const containerd = containerdPaths(dir, containerdRoot(dir));
  const state: NodeState = {
    owner: process.pid,
    name,
    dir,
    cgroupRoot: `/sbxnode-${id}`,
    containerdRoot: containerd.root,
    containerdSocket: containerd.socket,
    net,
    sysctls: Object.fromEntries(Object.keys(KUBELET_SYSCTLS).map((k) => [k, readSysctl(k)])),
  };
  // Recorded before anything is made, so a killed run is swept by the next.
  writeFileSync(join(dir, "state.json"), JSON.stringify(state, null, 2));

  const started: Started[] = [];
  let relay: Server | undefined;
  const kc = cp.kubeConfig();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const stop = async () => {
    // Kubelet first, so it restarts nothing; then every container, then the rest.
    for (const p of started.filter((p) => p.name === "kubelet")) await p.stop();
    if (started.some((p) => p.name === "containerd" && p.child.exitCode === null))
      removeAllContainers(containerd);
    for (const p of started.reverse()) await p.stop();
    relay?.close();
    await sweep(state);
    await core.deleteNode({ name }).catch(() => undefined);
  };

  try {
    createCgroupRoot(state.cgroupRoot);
    await time("network", () => createNetwork(net));
    const r = await apiserverRelay(cp, net.hostIp);
    relay = r.server;
    const kubeconfig = join(dir, "node.kubeconfig");
    writeFileSync(kubeconfig, nodeKubeconfig(cp, `https://${net.hostIp}:${r.port}`));

    started.push(
      await time("containerd", () => startContainerd(dir, containerd, net, PAUSE_IMAGE)),
    );
    await time("images", () => {
      importPause(containerd, binDir);
      importDockerImages(containerd, opts.images ?? []);
    });

    const files: NodeFiles = {
      dir,
      binDir,
      kubeconfig,
      clientCaPath: cp.kubeletClientCaPath,
      name,
      cgroupRoot: state.cgroupRoot,
      net,
      containerd,
      dnsServer: opts.dnsServer ?? net.podGateway,
      taints: opts.taints ?? [],
    };
    started.push(startKubelet(files));
    await time("registered", () =>
      waitRegistered(core, name, started, opts.readyTimeoutMs ?? 120_000),
    );
    // kube-proxy and kube-router identify their node by the Node object: start them once there is one.
    started.push(startKubeProxy(files), startLocalPath(files, storageBin));
    await time("storage-class", () => ensureLocalPathClass(kc));
    if (opts.csi) {
      started.push(startCsiHostpath(files, csiBin));
      started.push(...(await time("snapshots", () => startSnapshotting(kc, files, csiBin))));
    }
    await time("ready", () => waitReady(core, name, started, opts.readyTimeoutMs ?? 120_000));
    // kube-router only after kube-proxy's first sync: kube-router rewrites the
    // filter table from a save it took a moment before (iptables-save, then
    // iptables-restore), so chains kube-proxy makes in between are lost, and
    // kube-proxy then fails its sync and retries only a sync period later
    // (CI saw it not retry within 150 s).
    await time("proxy", () => waitForKubeProxy(files, net, started));
    started.push(startKubeRouter(files));
    await time("firewall", () => waitForChain(net, started, "KUBE-ROUTER-FORWARD", 150_000));
    timings.total = Math.round(performance.now() - began);
  } catch (err) {
    await stop().catch((e) => process.stderr.write(`stopping the failed node: ${e}\n`));
    throw err;
  }

  return {
    name,
    dir,
    net,
    binDir,
    containerd,
    state,
    timings,
    ctr: (args) => ctr(containerd, args),
    exec: (cmd, args) => inNetns(net.netns, cmd, args),
    leftovers: () => leftovers(state),
    stop,
  };
}

async function waitRegistered(
  core: k8s.CoreV1Api,
  name: string,
  started: Started[],
  timeoutMs: number,
) {
  const deadline = Date.now() + timeoutMs;
  while (!(await core.readNode({ name }).catch(() => undefined))) {
    const dead = started.find((p) => p.child.exitCode !== null);
    if (dead) throw new Error(`${dead.name} exited with ${dead.child.exitCode}:\n${logTail(dead)}`);
    if (Date.now() > deadline)
      throw new Error(
        `node ${name} did not register in ${timeoutMs} ms:\n${started.map(logTail).join("\n")}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Registered, Ready, and schedulable (no controller here lifts the not-ready taint). */
async function waitReady(core: k8s.CoreV1Api, name: string, started: Started[], timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const dead = started.find((p) => p.child.exitCode !== null);
    if (dead) throw new Error(`${dead.name} exited with ${dead.child.exitCode}:\n${logTail(dead)}`);
    const node = await core.readNode({ name }).catch(() => undefined);
    if (node?.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")) {
      // The TaintNodesByCondition admission taints a new node not-ready; the
      // node-lifecycle controller (not run here) would lift it once Ready.
      const taints = node.spec?.taints ?? [];
      const kept = taints.filter((t) => t.key !== "node.kubernetes.io/not-ready");
      if (kept.length < taints.length) {
        await core.patchNode(
          { name, body: [{ op: "replace", path: "/spec/taints", value: kept }] },
          k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.JsonPatch),
        );
      }
      return;
    }
    if (Date.now() > deadline) {
      const kubelet = started.find((p) => p.name === "kubelet")!;
      throw new Error(`node ${name} not Ready after ${timeoutMs} ms:\n${logTail(kubelet)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * kube-proxy's chains in the node's tables. A first sync that failed (its
 * iptables calls raced another writer of the table) is retried by kube-proxy
 * only a sync period (30 s) later: restart it once instead of waiting.
 */
async function waitForKubeProxy(files: NodeFiles, net: NodeNetwork, started: Started[]) {
  const first = await waitForChain(net, started, "KUBE-SERVICES", 20_000).then(
    () => true,
    (err) => {
      if (err instanceof ChainMissingError) return false;
      throw err;
    },
  );
  if (first) return;
  const i = started.findIndex((p) => p.name === "kube-proxy");
  process.stderr.write(
    `kube-proxy has not synced in 20 s; restarting it:\n${logTail(started[i]!)}\n`,
  );
  await started[i]!.stop();
  started[i] = startKubeProxy(files);
  await waitForChain(net, started, "KUBE-SERVICES", 120_000);
}

class ChainMissingError extends Error {}

/** Until `chain` is in the node's tables (a component that exits fails it at once). */
async function waitForChain(
  net: NodeNetwork,
  started: Started[],
  chain: string,
  timeoutMs: number,
) {
  // Usually a second; under load (another node starting, the xtables lock
  // shared with the host's dockerd and the other node) it has taken over 60 s.
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rules = trySh("nsenter", [`--net=/run/netns/${net.netns}`, "--", "iptables-save"]) ?? "";
    if (rules.includes(`:${chain} `)) return;
    const dead = started.find((p) => p.child.exitCode !== null);
    if (dead) throw new Error(`${dead.name} exited with ${dead.child.exitCode}:\n${logTail(dead)}`);
    if (Date.now() > deadline) {
      throw new ChainMissingError(
        `chain ${chain} missing after ${timeoutMs / 1000} s:\n${started.map(logTail).join("\n")}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function logTail(p: Started): string {
  const text = existsSync(p.logPath) ? readFileSync(p.logPath, "utf8") : "";
  return `--- ${p.name} ---\n${text.trimEnd().split("\n").slice(-25).join("\n")}`;
}

/** Kill and remove every container and Pod sandbox the node's containerd holds. */
function removeAllContainers(p: ContainerdPaths): void {
  const ids = (args: string[]) =>
    (trySh("ctr", ["--address", p.socket, "-n", "k8s.io", ...args]) ?? "")
      .split("\n")
      .filter(Boolean);
  for (const id of ids(["tasks", "ls", "-q"]))
    trySh("ctr", ["--address", p.socket, "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", id]);
  for (const id of ids(["tasks", "ls", "-q"]))
    trySh("ctr", ["--address", p.socket, "-n", "k8s.io", "tasks", "rm", "-f", id]);
  for (const id of ids(["containers", "ls", "-q"]))
    trySh("ctr", ["--address", p.socket, "-n", "k8s.io", "containers", "rm", id]);
}
