// A stand-in internet for docker sandboxes: a network namespace behind a veth
// pair, routed from the host, so containers reach it the way they would reach
// the internet (through their bridge and the host's NAT). It serves HTTP, HTTPS
// and an authoritative DNS zone on documentation addresses (198.51.100.0/24)
// and logs every connection and DNS question it sees, so "cannot reach" is
// checked on the far side too. No packet leaves this machine.
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Zone } from "../egress/support/authoritative-dns.js";
import { makeTestCert } from "../egress/support/certs.js";
import { collectStaleNamespaces, Netns, uniqueName } from "../egress/support/netns.js";
import { type JsonLinesProcess, must, run, tsNode } from "../egress/support/processes.js";

export const INET = {
  host: "198.51.100.1",
  peer: "198.51.100.2",
  allowed: "198.51.100.10",
  denied: "198.51.100.20",
  dns: "198.51.100.53",
} as const;

export interface DockerInternet {
  servers: JsonLinesProcess;
  destroy(): Promise<void>;
}

export async function startDockerInternet(zone: Zone): Promise<DockerInternet> {
  await collectStaleNamespaces();
  // A link left by a killed run would hold the host route: remove it first.
  const links = await run(["ip", "-o", "link", "show"]);
  for (const m of links.stdout.matchAll(/^\d+: (sbxi[0-9a-f]+h)[@:]/gm)) {
    await run(["ip", "link", "del", m[1]!]);
  }
  const ns = await Netns.create(uniqueName("dinet"));
  const id = randomBytes(3).toString("hex");
  const hostIf = `sbxi${id}h`;
  const peerIf = `sbxi${id}p`;
  try {
    await must(["ip", "link", "add", hostIf, "type", "veth", "peer", "name", peerIf]);
    await must(["ip", "link", "set", peerIf, "netns", ns.name]);
    await must(["ip", "addr", "add", `${INET.host}/24`, "dev", hostIf]);
    await must(["ip", "link", "set", hostIf, "up"]);
    for (const addr of [INET.peer, INET.allowed, INET.denied, INET.dns]) {
      await must(["ip", "-n", ns.name, "addr", "add", `${addr}/24`, "dev", peerIf]);
    }
    await must(["ip", "-n", ns.name, "link", "set", peerIf, "up"]);
    await must(["ip", "-n", ns.name, "route", "add", "default", "via", INET.host]);
    const dir = mkdtempSync(join(tmpdir(), "docker-internet-"));
    const cert = makeTestCert(["allowed.test", "denied.test"], dir);
    const servers = ns.spawn(
      tsNode("test/egress/support/internet-main.ts", {
        certPath: cert.certPath,
        keyPath: cert.keyPath,
        dnsHost: INET.dns,
        zone,
      }),
    );
    await servers.waitFor((l) => l.event === "ready");
    return {
      servers,
      destroy: async () => {
        await ns.destroy();
        await run(["ip", "link", "del", hostIf]);
      },
    };
  } catch (err) {
    await ns.destroy();
    await run(["ip", "link", "del", hostIf]);
    throw err;
  }
}
