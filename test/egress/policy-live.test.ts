// Address rules and defaultAction judged by the sidecar, the firewall static:
// in real network namespaces, a policy change to a running sidecar opens and
// closes direct traffic at once (the lockdown is installed once and never
// touched again), and a workload that tries to reach another port directly,
// or to get around the redirect with a raw socket or UDP, reaches nothing.
// Packets are counted on the far side (an nft counter in the "internet"
// namespace), so "nothing arrived" is measured, not inferred from a client.
import { chmodSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/paths.js";
import { makeTestCert } from "./support/certs.js";
import { EGRESS_CLI } from "./support/egress-binary.js";
import { eventually } from "./support/eventually.js";
import { collectStaleNamespaces, createTopology, NET, type Topology } from "./support/netns.js";
import { type JsonLinesProcess, requireRootAndTools, tsNode } from "./support/processes.js";

const CLI = EGRESS_CLI;
const WORKLOAD = { uid: 1000 };
const SIDECAR_UID = 1337;
const RAW = join(REPO_ROOT, "test/egress/support/raw-escape.py");

const BASE = `
defaultAction: deny
rules:
  - {action: allow, target: "*.wild.test"}
`;

let topo: Topology;
let internet: JsonLinesProcess;
let sidecar: JsonLinesProcess;
let dir: string;
let policyPath: string;

/** Replace the policy file as the docker backend does (a new file, renamed in place). */
function writePolicy(text: string): void {
  writeFileSync(`${policyPath}.tmp`, text, { mode: 0o644 });
  renameSync(`${policyPath}.tmp`, policyPath);
}

/** What the sandbox's ruleset looks like now; compared before and after policy changes. */
async function firewall(): Promise<string> {
  const v4 = await topo.sandbox.exec(["iptables-nft-save"]);
  return v4.stdout.replace(/^#.*$/gm, "").replace(/\[\d+:\d+\]/g, "");
}

/** Packets from the sandbox that reached the internet namespace, by counter. */
async function arrived(counter: string): Promise<number> {
  const r = await topo.internet.exec(["nft", "list", "counter", "inet", "probe", counter]);
  expect(r.code, r.stderr).toBe(0);
  return Number(/packets (\d+)/.exec(r.stdout)?.[1] ?? Number.NaN);
}

beforeAll(async () => {
  requireRootAndTools(["ip", "setpriv", "curl", "nft", "iptables-nft-restore", "python3"]);
  await collectStaleNamespaces();
  dir = mkdtempSync(join(tmpdir(), "egress-live-"));
  chmodSync(dir, 0o755);
  policyPath = join(dir, "policy.yaml");
  writeFileSync(policyPath, BASE, { mode: 0o644 });
  const cert = makeTestCert(["a.wild.test"], dir);

  topo = await createTopology();
  internet = topo.internet.spawn(
    tsNode("test/egress/support/internet-main.ts", {
      certPath: cert.certPath,
      keyPath: cert.keyPath,
      dnsHost: NET.dns,
      zone: { "a.wild.test": { A: [NET.allowed] } },
    }),
  );
  // Counters in front of everything the internet namespace receives from the sandbox.
  const s = NET.sandbox;
  const probe = await topo.internet.exec(["nft", "-f", "-"], {
    input: `table inet probe {
      counter tcp8080 {}
      counter tcp9998 {}
      counter udp9997 {}
      counter echo {}
      chain in {
        type filter hook input priority -300;
        ip saddr ${s} tcp dport 8080 counter name "tcp8080"
        ip saddr ${s} tcp dport 9998 counter name "tcp9998"
        ip saddr ${s} udp dport 9997 counter name "udp9997"
        ip saddr ${s} ip daddr ${NET.denied} icmp type echo-request counter name "echo"
      }
    }\n`,
  });
  expect(probe.code, probe.stderr).toBe(0);
  await internet.waitFor((l) => l.event === "ready");

  topo.sandbox.etcFile("resolv.conf", `nameserver ${NET.dns}\noptions timeout:2 attempts:1\n`);
  const init = await topo.sandbox.exec(
    [
      ...CLI,
      "egress-init",
      `--policy-file=${policyPath}`,
      `--sidecar-uid=${SIDECAR_UID}`,
      "--iptables=nft",
    ],
    { timeoutMs: 30_000 },
  );
  expect(init.code, init.stderr).toBe(0);
  sidecar = topo.sandbox.spawn([
    ...CLI,
    "egress",
    `--policy-file=${policyPath}`,
    "--sandbox=tenant-a/live",
    `--upstream-dns=${NET.dns}:53`,
    `--sidecar-uid=${SIDECAR_UID}`,
    "--health-port=15021",
  ]);
  await sidecar.waitFor((l) => l.msg === "egress sidecar ready");
}, 90_000);

afterAll(async () => {
  await topo?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** curl as the workload: the JSON the server answered, or null when nothing came back. */
async function reach(url: string): Promise<{ local: string; port: number } | null> {
  const r = await topo.sandbox.exec(
    ["curl", "-sS", "--max-time", "4", "--connect-timeout", "3", url],
    { as: WORKLOAD, timeoutMs: 10_000 },
  );
  if (r.code !== 0) return null;
  try {
    return JSON.parse(r.stdout) as { local: string; port: number };
  } catch {
    return null; // the sidecar's own refusal (403) on port 80
  }
}

const connectionsSince = (mark: number, local: string, port: number) =>
  internet.lines
    .slice(mark)
    .filter((l) => l.event === "connection" && l.local === local && l.port === port);

describe("address rules and defaultAction follow the policy file live, the firewall static", () => {
  it("an address rule added to a running sandbox opens its port at once; removed, closes it", async () => {
    const lockdown = await firewall();
    const url = `http://${NET.privateHost}:8080/live`;
    const before = internet.lines.length;
    expect(await reach(url)).toBeNull();
    expect(connectionsSince(before, NET.privateHost, 8080)).toEqual([]);

    writePolicy(`${BASE}  - {action: allow, target: ${NET.privateHost}, ports: [8080]}\n`);
    await eventually(
      async () => expect(await reach(url)).toMatchObject({ local: NET.privateHost, port: 8080 }),
      10_000,
      200,
    );
    // The same address on another port, and another address, stay closed.
    expect(await reach(`http://${NET.privateHost}/`)).toBeNull();
    expect(await reach(`http://${NET.denied}:8080/`)).toBeNull();

    writePolicy(BASE);
    await eventually(async () => expect(await reach(url)).toBeNull(), 10_000, 200);
    const after = internet.lines.length;
    expect(await reach(url)).toBeNull();
    expect(connectionsSince(after, NET.privateHost, 8080)).toEqual([]);
    expect(await firewall()).toBe(lockdown);
  });

  it("an address rule for port 80 lets that address through directly, live", async () => {
    expect(await reach(`http://${NET.denied}/`)).toBeNull(); // Host is an IP: 403 from the sidecar
    writePolicy(`${BASE}  - {action: allow, target: ${NET.denied}, ports: [80]}\n`);
    await eventually(
      async () =>
        expect(await reach(`http://${NET.denied}/direct`)).toMatchObject({
          local: NET.denied,
          port: 80,
        }),
      10_000,
      200,
    );
    writePolicy(BASE);
    await eventually(
      async () => expect(await reach(`http://${NET.denied}/`)).toBeNull(),
      10_000,
      200,
    );
  });

  it("defaultAction allow flipped live: other addresses open, reserved ones stay closed; flipped back, closed", async () => {
    const lockdown = await firewall();
    const url = `http://${NET.denied}:8080/allow`;
    expect(await reach(url)).toBeNull();

    writePolicy(BASE.replace("defaultAction: deny", "defaultAction: allow"));
    await eventually(
      async () => expect(await reach(url)).toMatchObject({ local: NET.denied, port: 8080 }),
      10_000,
      200,
    );
    const mark = internet.lines.length;
    expect(await reach(`http://${NET.privateHost}:8080/`)).toBeNull(); // RFC 1918: reserved
    expect(await reach(`http://${NET.metadata}:8080/`)).toBeNull(); // link-local metadata
    expect(connectionsSince(mark, NET.privateHost, 8080)).toEqual([]);
    expect(connectionsSince(mark, NET.metadata, 8080)).toEqual([]);

    writePolicy(BASE);
    await eventually(async () => expect(await reach(url)).toBeNull(), 10_000, 200);
    expect(await firewall()).toBe(lockdown);
    const decisions = sidecar.lines.filter((l) => l.protocol === "tcp");
    expect(decisions).toContainEqual(
      expect.objectContaining({
        target: NET.denied,
        port: 8080,
        verdict: "allow",
        rule: "default",
      }),
    );
    expect(decisions).toContainEqual(
      expect.objectContaining({ target: NET.metadata, verdict: "deny", rule: "reserved-address" }),
    );
  });

  it("a refused connection to another port never leaves the sandbox", async () => {
    const before = await arrived("tcp8080");
    for (const host of [NET.denied, NET.allowed, NET.privateHost]) {
      expect(await reach(`http://${host}:8080/`)).toBeNull();
    }
    expect(await arrived("tcp8080")).toBe(before);
  });
});

describe.each(["deny", "allow"] as const)(
  "getting around the redirect, under defaultAction %s",
  (defaultAction) => {
    beforeAll(async () => {
      writePolicy(BASE.replace("defaultAction: deny", `defaultAction: ${defaultAction}`));
      // Wait until the sidecar follows the file (allow opens denied.test:8080).
      await eventually(
        async () =>
          expect((await reach(`http://${NET.denied}:8080/`)) !== null).toBe(
            defaultAction === "allow",
          ),
        10_000,
        200,
      );
    });

    /** raw-escape.py as UID 1000, with CAP_NET_RAW unless unprivileged, or as the sidecar's UID. */
    async function send(args: string[], opts: { uid?: number; raw?: boolean } = {}) {
      const uid = opts.uid ?? WORKLOAD.uid;
      const caps = opts.raw === false ? "-all" : "+net_raw";
      const r = await topo.sandbox.exec(
        [
          "setpriv",
          `--reuid=${uid}`,
          `--regid=${uid}`,
          "--clear-groups",
          `--inh-caps=${caps}`,
          `--ambient-caps=${caps}`,
          "--",
          "/usr/bin/python3",
          RAW,
          ...args,
        ],
        { timeoutMs: 15_000 },
      );
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout.trim()) as { opened: boolean; sent?: number; errors?: string[] };
    }

    it("raw TCP (a SYN, or mid-stream data) to another port reaches nothing", async () => {
      const before = await arrived("tcp9998");
      for (const kind of ["tcp-syn", "tcp-ack"]) {
        const r = await send([kind, NET.sandbox, NET.denied, "9998"]);
        expect(r.opened).toBe(true); // the precondition: the workload holds CAP_NET_RAW
      }
      expect(await arrived("tcp9998")).toBe(before);
    });

    it("raw and ordinary UDP, and raw ICMP, reach nothing", async () => {
      const udpBefore = await arrived("udp9997");
      const icmpBefore = await arrived("echo");
      expect((await send(["udp-raw", NET.sandbox, NET.denied, "9997"])).opened).toBe(true);
      expect((await send(["udp", NET.sandbox, NET.denied, "9997"], { raw: false })).opened).toBe(
        true,
      );
      expect((await send(["icmp", NET.sandbox, NET.denied])).opened).toBe(true);
      expect(await arrived("udp9997")).toBe(udpBefore);
      expect(await arrived("echo")).toBe(icmpBefore);
    });

    it("the counters do count: the same packets from the sidecar's UID arrive", async () => {
      const tcpBefore = await arrived("tcp9998");
      const udpBefore = await arrived("udp9997");
      const icmpBefore = await arrived("echo");
      const own = { uid: SIDECAR_UID };
      expect((await send(["tcp-syn", NET.sandbox, NET.denied, "9998"], own)).sent).toBe(3);
      expect((await send(["udp-raw", NET.sandbox, NET.denied, "9997"], own)).sent).toBe(3);
      expect((await send(["icmp", NET.sandbox, NET.denied], own)).sent).toBe(3);
      await eventually(async () => {
        expect(await arrived("tcp9998")).toBe(tcpBefore + 3);
        expect(await arrived("udp9997")).toBe(udpBefore + 3);
        expect(await arrived("echo")).toBe(icmpBefore + 3);
      }, 5_000);
    });
  },
);
