// Stand-in servers for egress tests on the real node, in a network namespace
// of the test's own linked to the node's namespace: Pods reach them through the
// node like any outside address, and nothing else can be reached (the node has
// no default route). Every target a test uses is given an address routed here,
// and `proveRoutes` shows the route before any attack runs.
//
//   node netns  sbxi-<rand> 198.51.100.1/24  <- veth ->  eth0  stand-in netns
//     routes: 198.51.100.0/24 (link), 169.254.169.254, 10.99.0.10 via .10
//                                          servers on .10 (allowed), .20 (denied),
//                                          169.254.169.254, 10.99.0.10; DNS on .53
import { randomBytes } from "node:crypto";
import type { Zone } from "../../egress/support/authoritative-dns.js";
import { makeTestCert, type TestCert } from "../../egress/support/certs.js";
import { Netns, uniqueName } from "../../egress/support/netns.js";
import { type JsonLinesProcess, must, run, tsNode } from "../../egress/support/processes.js";

export const STANDIN = {
  gateway: "198.51.100.1",
  allowed: "198.51.100.10",
  denied: "198.51.100.20",
  dns: "198.51.100.53",
  metadata: "169.254.169.254",
  privateHost: "10.99.0.10",
} as const;

/** The node's Pods use this resolver (test/support/node-global-setup.ts). */
export const STANDIN_DNS = STANDIN.dns;

export interface Standins {
  netns: Netns;
  /** The node's end of the link to the stand-ins (in the node's namespace). */
  nodeInterface: string;
  internet: JsonLinesProcess;
  cert: TestCert;
  /** Connections the stand-in servers saw, by local address (the address dialed). */
  connectionsTo(address: string): Record<string, unknown>[];
  requests(): Record<string, unknown>[];
  dnsQueries(): Record<string, unknown>[];
  destroy(): Promise<void>;
}

export async function startStandins(
  nodeNetns: string,
  podCidr: string,
  zone: Zone,
  names: string[],
): Promise<Standins> {
  const netns = await Netns.create(uniqueName("standin"));
  const nodeIf = `sbxi-${randomBytes(3).toString("hex")}`;
  const n = (args: string[]) => must(["ip", "-n", nodeNetns, ...args]);
  const s = (args: string[]) => must(["ip", "-n", netns.name, ...args]);
  try {
    await must([
      "ip",
      "-n",
      nodeNetns,
      "link",
      "add",
      nodeIf,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      netns.name,
    ]);
    await n(["addr", "add", `${STANDIN.gateway}/24`, "dev", nodeIf]);
    await n(["link", "set", nodeIf, "up"]);
    for (const a of [STANDIN.allowed, STANDIN.denied, STANDIN.dns])
      await s(["addr", "add", `${a}/24`, "dev", "eth0"]);
    for (const a of [STANDIN.metadata, STANDIN.privateHost])
      await s(["addr", "add", `${a}/32`, "dev", "eth0"]);
    await s(["link", "set", "eth0", "up"]);
    await s(["route", "add", podCidr, "via", STANDIN.gateway]);
    for (const a of [STANDIN.metadata, STANDIN.privateHost])
      await n(["route", "add", `${a}/32`, "via", STANDIN.allowed, "dev", nodeIf]);
    const cert = makeTestCert(names);
    const internet = netns.spawn(
      tsNode("test/egress/support/internet-main.ts", {
        certPath: cert.certPath,
        keyPath: cert.keyPath,
        dnsHost: STANDIN.dns,
        zone,
      }),
    );
    await internet.waitFor((l) => l.event === "ready", 60_000);
    const lines = () => internet.lines;
    return {
      netns,
      nodeInterface: nodeIf,
      internet,
      cert,
      connectionsTo: (address) =>
        lines().filter((l) => l.event === "connection" && l.local === address),
      requests: () => lines().filter((l) => l.event === "request"),
      dnsQueries: () => lines().filter((l) => l.event === "dns"),
      destroy: async () => {
        await netns.destroy();
        await run(["ip", "-n", nodeNetns, "link", "del", nodeIf]);
        await run(["ip", "-n", nodeNetns, "route", "del", `${STANDIN.metadata}/32`]);
        await run(["ip", "-n", nodeNetns, "route", "del", `${STANDIN.privateHost}/32`]);
      },
    };
  } catch (err) {
    await netns.destroy();
    await run(["ip", "-n", nodeNetns, "link", "del", nodeIf]);
    throw err;
  }
}

/**
 * Where the node would send a packet to each address: all must leave through
 * the stand-ins' link, so an attack that "works" can only ever reach them.
 */
export async function proveRoutes(
  nodeNetns: string,
  addresses: string[],
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const a of addresses) {
    out[a] = (await must(["ip", "-n", nodeNetns, "route", "get", a])).trim();
  }
  return out;
}
