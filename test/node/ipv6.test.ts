// IPv6 egress from a real sandbox Pod. The node's CNI is IPv4-only, so a Pod
// has no IPv6 path of its own: that is checked first, and that the workload
// cannot make one. Then the test (root, from the node) builds the path a
// dual-stack cluster would give the Pod — an address on its eth0, a route via
// the node to a stand-in server — and shows the workload still gets nothing
// out: the firewall egress-init installed refuses every IPv6 packet, and its
// counters prove the packets were routed and refused there, not lost for want
// of a route.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { CHAIN } from "../../src/egress/firewall/ruleset.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { OPERATOR_IMAGE } from "../support/docker.js";
import {
  containerPid,
  kubectl,
  NODE_SANDBOX_IMAGE,
  NODE_TEST_RESOURCES,
} from "../support/node/pods.js";
import { type Standins, startStandins } from "../support/node/standins.js";
import { type RunningOperator, startOperator } from "../support/operator.js";
import { isReady, SandboxClient } from "../support/sandboxes.js";

const exec = promisify(execFile);
const kc = kubeConfig();
/** Documentation prefixes: the Pod's link to the node, and the stand-in's. */
const V6 = {
  pod: "2001:db8:1::2",
  node: "2001:db8:1::1",
  standinGateway: "2001:db8:2::1",
  standin: "2001:db8:2::10",
} as const;

let ns: Awaited<ReturnType<typeof testNamespace>>;
let operator: RunningOperator;
let standins: Standins;
let pod: k8s.V1Pod;
let pid: number;

const inPodNs = (argv: string[]) =>
  exec("nsenter", ["-t", String(pid), "-n", "--", ...argv], { timeout: 20_000 });
const inNodeNs = (argv: string[]) =>
  exec("ip", ["netns", "exec", inject("nodeNetns"), ...argv], { timeout: 20_000 });
const inWorkload = (...argv: string[]) =>
  kubectl(["exec", "-n", ns.name, "v6", "-c", "sandbox", "--", ...argv]);
/** Connections the stand-in servers (listening on every address, IPv6 too) saw to its IPv6 address. */
const arrived = () => standins.connectionsTo(V6.standin).length;

/** Packets the IPv6 REJECT rule at the end of the sandbox chain has refused (both iptables variants). */
async function refusedV6(): Promise<number> {
  let total = 0;
  for (const save of ["ip6tables-legacy-save", "ip6tables-nft-save"]) {
    const out = await inPodNs([save, "-c"]).catch(() => ({ stdout: "" }));
    for (const line of out.stdout.split("\n")) {
      const m = line.match(/^\[(\d+):\d+\] -A (\S+) .*-j REJECT/);
      if (m && m[2] === CHAIN) total += Number(m[1]);
    }
  }
  return total;
}

beforeAll(async () => {
  standins = await startStandins(inject("nodeNetns"), inject("nodePodCidr"), {}, ["standin.test"]);
  ns = await testNamespace(kc, "ipv6");
  operator = await startOperator({
    namespace: ns.name,
    user: "operator-2",
    egressImage: OPERATOR_IMAGE,
  });
  const sbx = new SandboxClient(kc, ns.name);
  // The widest policy: whatever IPv6 did, "allow" would let it.
  await sbx.create("v6", {
    image: NODE_SANDBOX_IMAGE,
    resources: NODE_TEST_RESOURCES,
    command: ["sleep", "3600"],
    network: { egress: { defaultAction: "allow" } },
  });
  await sbx.waitFor(
    "v6",
    (s) => {
      isReady(s);
      expect(s.status?.phase).toBe("Running");
    },
    180_000,
  );
  pod = (await sbx.pod("v6"))!;
  pid = await containerPid(pod, "sandbox");
}, 240_000);
afterAll(async () => {
  await operator?.stop();
  await ns?.delete();
  await standins?.destroy();
});

describe("IPv6 egress from a real sandbox Pod", () => {
  it("the Pod has no IPv6 path of its own, and the workload cannot make one", async () => {
    // /proc/net/if_inet6: address, ifindex, prefix, scope, flags, name; scope 00 is global.
    const addrs = await inWorkload("cat", "/proc/net/if_inet6");
    expect(addrs.code, addrs.stderr).toBe(0);
    const global = addrs.stdout
      .trim()
      .split("\n")
      .filter((l) => l.trim() && l.trim().split(/\s+/)[3] === "00");
    expect(global).toEqual([]);
    const routes = await inWorkload("cat", "/proc/net/ipv6_route");
    // No default route (destination ::/0 through a gateway) and nothing outside link-local/multicast.
    const routed = routes.stdout
      .trim()
      .split("\n")
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length > 9 && f[9] !== "lo")
      .filter((f) => !/^fe80|^ff/.test(f[0]!));
    expect(routed).toEqual([]);
    const add = await inWorkload(
      "busybox",
      "ip",
      "-6",
      "addr",
      "add",
      `${V6.pod}/64`,
      "dev",
      "eth0",
    );
    expect(add.code).not.toBe(0);
    expect(add.stderr).toMatch(/not permitted/i);
    const route = await inWorkload("busybox", "ip", "-6", "route", "add", "default", "dev", "eth0");
    expect(route.code).not.toBe(0);
  });

  it("given a dual-stack path, every IPv6 attempt is refused by the Pod's firewall", async () => {
    // The path, as root from the node.
    const standinIf = standins.nodeInterface;
    await inNodeNs(["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    await inNodeNs(["sysctl", "-qw", "net.ipv6.conf.cni0.disable_ipv6=0"]);
    await inNodeNs(["ip", "-6", "addr", "add", `${V6.node}/64`, "dev", "cni0", "nodad"]);
    await inNodeNs([
      "ip",
      "-6",
      "addr",
      "add",
      `${V6.standinGateway}/64`,
      "dev",
      standinIf,
      "nodad",
    ]);
    await inPodNs(["sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=0"]);
    await inPodNs(["ip", "-6", "addr", "add", `${V6.pod}/64`, "dev", "eth0", "nodad"]);
    await inPodNs(["ip", "-6", "route", "add", "default", "via", V6.node, "dev", "eth0"]);
    const s = (args: string[]) => exec("ip", ["-n", standins.netns.name, ...args]);
    await s(["-6", "addr", "add", `${V6.standin}/64`, "dev", "eth0", "nodad"]);
    await s(["-6", "route", "add", "2001:db8:1::/64", "via", V6.standinGateway]);

    // The path works: the node reaches the stand-in over IPv6, and the Pod's
    // kernel routes the stand-in's address out of eth0 via the node.
    const fromNode = await inNodeNs(["curl", "-sS", "-m", "4", `http://[${V6.standin}]:8080/`]);
    expect(JSON.parse(fromNode.stdout)).toMatchObject({ local: V6.standin, port: 8080 });
    expect(arrived()).toBe(1);
    const route = await inPodNs(["ip", "-6", "route", "get", V6.standin]);
    expect(route.stdout).toMatch(new RegExp(`via ${V6.node} dev eth0`));

    const refusedBefore = await refusedV6();
    const attempts = [
      await inWorkload(
        "curl",
        "-sS",
        "-m",
        "4",
        "--noproxy",
        "*",
        "-6",
        `http://[${V6.standin}]:8080/`,
      ),
      await inWorkload("curl", "-sS", "-m", "4", "--noproxy", "*", "-6", `http://[${V6.standin}]/`),
      await inWorkload(
        "curl",
        "-sS",
        "-m",
        "4",
        "-k",
        "--noproxy",
        "*",
        "-6",
        `https://[${V6.standin}]/`,
      ),
      // Through the sidecar's explicit proxy: it never dials IPv6 for the workload.
      await inWorkload("curl", "-sS", "-m", "4", `http://[${V6.standin}]:8080/`),
      await inWorkload(
        "python3",
        "-c",
        `import socket
s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM);s.settimeout(2);s.sendto(b"x",("${V6.standin}",53))
try: s.recv(10); print("answered")
except OSError as e: print("no answer", e)`,
      ),
    ];
    for (const a of attempts) expect(a.stdout, a.stderr).not.toMatch(/"local"|answered/);
    expect(arrived()).toBe(1); // only the node's own request
    // Refused by the firewall's IPv6 REJECT (each TCP attempt's SYNs, the UDP datagram).
    expect(await refusedV6()).toBeGreaterThanOrEqual(refusedBefore + 4);
  });
});
