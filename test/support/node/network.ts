// The node's own network namespace. The kubelet, containerd, kube-proxy and
// kube-router run in it, so every rule they program (kube-proxy's KUBE-*
// chains, kube-router's KUBE-ROUTER-* chains, CNI's bridge and portmap rules),
// the cni0 bridge and the Pods' veths live there, never in the host's tables,
// which other tests and dockerd share. Deleting the namespace removes them all.
//
//   host  sbxn-<id>  10.213.<i>.1/30  <- veth ->  eth0 10.213.<i>.2/30  node netns
//                                                  cni0 10.214.<i>.1/24  Pods
//
// The host routes the Pod range through the node (tests can reach Pods); the
// node has no default route, so nothing in it can reach beyond this machine
// (an image pull for a missing image fails at once instead of leaving it).
import { readFileSync } from "node:fs";
import { sh, trySh } from "./host.js";

export interface NodeNetwork {
  netns: string;
  hostInterface: string;
  /** The host's end of the link: node components reach the apiserver here. */
  hostIp: string;
  /** The node's InternalIP (the kubelet listens here). */
  nodeIp: string;
  podCidr: string;
  /** The Pods' gateway on cni0. */
  podGateway: string;
}

export function networkFor(id: string, index: number): NodeNetwork {
  return {
    netns: `sbxnode-${id}`,
    hostInterface: `sbxn-${id}`,
    hostIp: `10.213.${index}.1`,
    nodeIp: `10.213.${index}.2`,
    podCidr: `10.214.${index}.0/24`,
    podGateway: `10.214.${index}.1`,
  };
}

/** An index whose link and Pod ranges no route on the host uses yet. */
export function freeIndex(): number {
  const routes = sh("ip", ["-4", "route", "show", "table", "all"]);
  const used = (i: number) => routes.includes(`10.213.${i}.`) || routes.includes(`10.214.${i}.`);
  const start = Math.floor(Math.random() * 250);
  for (let k = 0; k < 250; k++) {
    const i = ((start + k) % 250) + 1;
    if (!used(i)) return i;
  }
  throw new Error("no free 10.213.x.0/30 + 10.214.x.0/24 range for a test node");
}

export function createNetwork(net: NodeNetwork): void {
  const ns = ["-n", net.netns];
  sh("ip", ["netns", "add", net.netns]);
  sh("ip", [
    "link",
    "add",
    net.hostInterface,
    "type",
    "veth",
    "peer",
    "name",
    "eth0",
    "netns",
    net.netns,
  ]);
  sh("ip", ["addr", "add", `${net.hostIp}/30`, "dev", net.hostInterface]);
  sh("ip", ["link", "set", net.hostInterface, "up"]);
  sh("ip", [...ns, "link", "set", "lo", "up"]);
  sh("ip", [...ns, "addr", "add", `${net.nodeIp}/30`, "dev", "eth0"]);
  sh("ip", [...ns, "link", "set", "eth0", "up"]);
  // ClusterIPs are DNATed by kube-proxy; a route must exist for the node's own
  // connections to them to get that far.
  sh("ip", [...ns, "route", "add", "10.96.0.0/16", "dev", "eth0"]);
  sh("ip", ["route", "add", net.podCidr, "via", net.nodeIp, "dev", net.hostInterface]);
  // Per-namespace sysctls: Pods are routed through the node, and bridged
  // Pod-to-Pod traffic must pass iptables for NetworkPolicy and Services.
  const sysctl = (key: string, value: string) =>
    sh("ip", ["netns", "exec", net.netns, "sysctl", "-qw", `${key}=${value}`]);
  sysctl("net.ipv4.ip_forward", "1");
  sysctl("net.bridge.bridge-nf-call-iptables", "1");
  sysctl("net.bridge.bridge-nf-call-ip6tables", "1");
}

/** Remove the namespace (and with it every interface, route and rule inside it). */
export function deleteNetwork(net: NodeNetwork): void {
  trySh("ip", ["netns", "delete", net.netns]);
  // The veth pair goes with the namespace; its host end (and the host route
  // through it) is removed explicitly in case the namespace was already gone.
  trySh("ip", ["link", "delete", net.hostInterface]);
}

/** What of the network is still on the host (for the leave-nothing-behind check). */
export function networkLeftovers(net: NodeNetwork): string[] {
  const left: string[] = [];
  if (
    trySh("ip", ["netns", "list"])
      ?.split("\n")
      .some((l) => l.split(" ")[0] === net.netns)
  ) {
    left.push(`netns ${net.netns}`);
  }
  if (trySh("ip", ["link", "show", net.hostInterface]) !== undefined)
    left.push(`link ${net.hostInterface}`);
  const routes = sh("ip", ["-4", "route", "show", "table", "all"]);
  for (const cidr of [net.podCidr, net.nodeIp])
    if (routes.includes(cidr.split("/")[0]!)) left.push(`route ${cidr}`);
  return left;
}

/** Host firewall lines (iptables-save, both variants, and nft) that mention this node. */
export function hostFirewallMentions(net: NodeNetwork, needles: string[]): string[] {
  const dumps = [
    trySh("iptables-nft-save", []),
    trySh("iptables-legacy-save", []),
    trySh("ip6tables-nft-save", []),
    trySh("nft", ["list", "ruleset"]),
  ].join("\n");
  const words = [
    net.podCidr.split("/")[0]!.replace(/\.0$/, "."),
    net.nodeIp,
    net.hostInterface,
    ...needles,
  ];
  return dumps.split("\n").filter((line) => words.some((w) => line.includes(w)));
}

export function readSysctl(key: string): string {
  return readFileSync(`/proc/sys/${key.replaceAll(".", "/")}`, "utf8").trim();
}
