// Attacks that ride a flow conntrack attributes to the sidecar, in real network
// namespaces with the real CLI entry points (egress-init, egress). The firewall
// must not let a packet from another UID out to a non-loopback destination,
// whatever conntrack thinks of its flow: a workload that binds the port of the
// sidecar's just-closed upstream DNS socket (the escape seen on the docker
// backend), reuses a TCP flow conntrack still tracks, or pings with the
// identifier of a sidecar echo is refused, and the internet never sees it.
// What must keep working (the sidecar's own flows, replies to connections made
// to the sandbox, direct traffic an address rule allows) is checked too.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/paths.js";
import { makeTestCert } from "./support/certs.js";
import { EGRESS_CLI } from "./support/egress-binary.js";
import { collectStaleNamespaces, createTopology, NET, type Topology } from "./support/netns.js";
import { type JsonLinesProcess, must, requireRootAndTools, tsNode } from "./support/processes.js";

const CLI = EGRESS_CLI;
const ESCAPE = ["/usr/bin/python3", join(REPO_ROOT, "test/egress/support/escape.py")];
const WORKLOAD = { uid: 1000 };
const SIDECAR = { uid: 1337 };

const policyText = (defaultAction: "deny" | "allow") => `
defaultAction: ${defaultAction}
rules:
  - {action: allow, target: "*.wild.test"}
  - {action: allow, target: ${NET.privateHost}, ports: [8080]}
`;

describe.each(["deny", "allow"] as const)("defaultAction %s", (defaultAction) => {
  let topo: Topology;
  let internet: JsonLinesProcess;
  let sidecar: JsonLinesProcess;
  let dir: string;

  beforeAll(async () => {
    requireRootAndTools(["ip", "setpriv", "curl", "conntrack", "iptables-nft-restore"]);
    await collectStaleNamespaces();
    dir = mkdtempSync(join(tmpdir(), "egress-escape-"));
    chmodSync(dir, 0o755);
    const cert = makeTestCert(["x.wild.test"], dir);
    writeFileSync(join(dir, "policy.yaml"), policyText(defaultAction), { mode: 0o644 });

    topo = await createTopology();
    internet = topo.internet.spawn(
      tsNode("test/egress/support/internet-main.ts", {
        certPath: cert.certPath,
        keyPath: cert.keyPath,
        dnsHost: NET.dns,
        zone: { "*.wild.test": { A: [NET.allowed] }, "denied.test": { A: [NET.denied] } },
      }),
    );
    await internet.waitFor((l) => l.event === "ready");
    // What Docker sets in every container: any UID may open ICMP echo sockets.
    await must([
      "ip",
      "netns",
      "exec",
      topo.sandbox.name,
      "sysctl",
      "-qw",
      "net.ipv4.ping_group_range=0 2147483647",
    ]);

    topo.sandbox.etcFile("resolv.conf", `nameserver ${NET.dns}\n`);
    const init = await topo.sandbox.exec(
      [...CLI, "egress-init", `--policy-file=${join(dir, "policy.yaml")}`, "--iptables=nft"],
      { timeoutMs: 30_000 },
    );
    expect(init.code, init.stderr).toBe(0);
    sidecar = topo.sandbox.spawn([
      ...CLI,
      "egress",
      `--policy-file=${join(dir, "policy.yaml")}`,
      "--sandbox=tenant-a/escape",
      `--upstream-dns=${NET.dns}:53`,
      `--sidecar-uid=${SIDECAR.uid}`,
    ]);
    await sidecar.waitFor((l) => l.msg === "egress sidecar ready");
  }, 90_000);

  afterAll(async () => {
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Run escape.py in the sandbox namespace and return its JSON verdict. */
  async function attack(args: string[], as = WORKLOAD): Promise<Record<string, unknown>> {
    const r = await topo.sandbox.exec([...ESCAPE, ...args], { as, timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout.trim().split("\n").pop()!);
  }

  const mark = () => internet.lines.length;
  const dnsSeen = (since: number) =>
    internet.lines
      .slice(since)
      .filter((l) => l.event === "dns")
      .map((l) => String(l.name));
  const connectionsTo = (since: number, local: string) =>
    internet.lines.slice(since).filter((l) => l.event === "connection" && l.local === local);

  describe("flows conntrack attributes to the sidecar", () => {
    it("UDP: a workload that binds the port of the sidecar's closed upstream socket cannot query the upstream", async () => {
      const since = mark();
      const r = await attack([
        "udp-dns",
        NET.dns,
        String(SIDECAR.uid),
        "a.wild.test",
        "denied.test",
      ]);
      // The attack's precondition held: the workload saw the sidecar's socket and bound its port.
      expect(r.sawSidecarPort).toBe(true);
      expect(r.addresses ?? []).not.toContain(NET.denied);
      expect(r.answered).toBe(false);
      const seen = dnsSeen(since);
      expect(seen).toContain("a.wild.test"); // the sidecar's own query went out
      expect(seen).not.toContain("denied.test");
    });

    it("TCP: a workload cannot connect out on the tuple of a flow conntrack still tracks", async () => {
      // A flow conntrack believes is established (as one of the sidecar's would
      // be after its socket went away without conntrack seeing the end), to an
      // address the policy refuses under either default (a reserved one).
      const localPort = 40_123;
      await must([
        ...["ip", "netns", "exec", topo.sandbox.name, "conntrack", "-I", "-p", "tcp"],
        ...["-s", NET.sandbox, "-d", NET.metadata, "--sport", String(localPort), "--dport", "8080"],
        ...["-r", NET.metadata, "-q", NET.sandbox, "--reply-port-src", "8080"],
        ...["--reply-port-dst", String(localPort), "--state", "ESTABLISHED", "--timeout", "120"],
        ...["-u", "SEEN_REPLY,ASSURED"],
      ]);
      const since = mark();
      const r = await attack(["tcp", NET.metadata, "8080", String(localPort), "denied.test"]);
      expect(r).toMatchObject({ connected: false });
      expect(connectionsTo(since, NET.metadata)).toEqual([]);
    });

    it("TCP: a workload cannot skip the transparent proxy on a port-80 tuple conntrack still tracks", async () => {
      const localPort = 40_124;
      await must([
        ...["ip", "netns", "exec", topo.sandbox.name, "conntrack", "-I", "-p", "tcp"],
        ...["-s", NET.sandbox, "-d", NET.denied, "--sport", String(localPort), "--dport", "80"],
        ...["-r", NET.denied, "-q", NET.sandbox, "--reply-port-src", "80"],
        ...["--reply-port-dst", String(localPort), "--state", "ESTABLISHED", "--timeout", "120"],
        ...["-u", "SEEN_REPLY,ASSURED"],
      ]);
      const since = mark();
      const r = await attack(["tcp", NET.denied, "80", String(localPort), "denied.test"]);
      expect(r).toMatchObject({ connected: false });
      expect(connectionsTo(since, NET.denied)).toEqual([]);
    });

    it("ICMP: a workload cannot ping out with the identifier of the sidecar's echo", async () => {
      const ident = "4242";
      const own = await attack(["ping", NET.metadata, ident, "sidecar"], SIDECAR);
      expect(own).toMatchObject({ replied: true, sender: NET.metadata }); // the sidecar's UID is let out
      const r = await attack(["ping", NET.metadata, ident, "exfil"]);
      expect(r).toMatchObject({ replied: false });
    });
  });

  describe("what the lockdown keeps working", () => {
    it("the sidecar's own traffic, redirected DNS and HTTP, and direct traffic an address rule allows", async () => {
      const since = mark();
      const viaSidecar = await topo.sandbox.exec(
        ["curl", "-sS", "--max-time", "5", `http://${NET.denied}:8080/sidecar`],
        { as: SIDECAR },
      );
      expect(viaSidecar.code, viaSidecar.stderr).toBe(0);
      const redirected = await topo.sandbox.exec(
        ["curl", "-sS", "--max-time", "5", "http://b.wild.test/"],
        { as: WORKLOAD },
      );
      expect(redirected.code, redirected.stderr).toBe(0);
      expect(JSON.parse(redirected.stdout)).toMatchObject({
        local: NET.allowed,
        host: "b.wild.test",
      });
      const direct = await topo.sandbox.exec(
        ["curl", "-sS", "--max-time", "5", `http://${NET.privateHost}:8080/direct`],
        { as: WORKLOAD },
      );
      expect(direct.code, direct.stderr).toBe(0);
      expect(JSON.parse(direct.stdout)).toMatchObject({ local: NET.privateHost, port: 8080 });
      expect(connectionsTo(since, NET.denied)).toHaveLength(1);
    });

    it("replies to a connection made to the workload from outside", async () => {
      const server = topo.sandbox.spawn(
        [
          "/usr/bin/python3",
          "-c",
          [
            "import socket",
            "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)",
            "s.bind(('0.0.0.0', 9000)); s.listen()",
            'print(\'{"event": "listening"}\', flush=True)',
            "while True:",
            "    c, _ = s.accept(); c.recv(4096)",
            "    c.sendall(b'HTTP/1.0 200 OK\\r\\ncontent-length: 7\\r\\n\\r\\ninbound'); c.close()",
          ].join("\n"),
        ],
        WORKLOAD,
      );
      await server.waitFor((l) => l.event === "listening");
      const r = await topo.internet.exec([
        "curl",
        "-sS",
        "--max-time",
        "5",
        `http://${NET.sandbox}:9000/`,
      ]);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("inbound");
      await server.kill();
    });
  });
});
