// End to end, in real network namespaces: the lockdown and the sidecar run in
// a "sandbox" namespace whose only link leads to an "internet" namespace
// (HTTP/HTTPS servers on several addresses, an authoritative DNS server). The
// workload is curl/dig running as UID 1000 without capabilities. Every packet
// that reaches the internet namespace is logged there, so "cannot reach" is
// checked on the far side too, not only from the client's exit code.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/paths.js";
import { makeTestCert, type TestCert } from "./support/certs.js";
import { EGRESS_CLI } from "./support/egress-binary.js";
import { eventually } from "./support/eventually.js";
import { collectStaleNamespaces, createTopology, NET, type Topology } from "./support/netns.js";
import { type JsonLinesProcess, requireRootAndTools, tsNode } from "./support/processes.js";

/** The built executable (make test builds it first). */
const CLI = EGRESS_CLI;

const WORKLOAD = { uid: 1000 };
const SIDECAR_UID = 1337;
const PROXY = "http://127.0.0.1:15001";

const ZONE = {
  "allowed.test": { A: [NET.allowed], AAAA: [NET.gateway6] },
  "*.wild.test": { A: [NET.allowed] },
  "denied.test": { A: [NET.denied] },
  "rebind.test": { A: [NET.metadata] },
  "private.test": { A: [NET.privateHost] },
};

const POLICY = `
defaultAction: deny
rules:
  - {action: allow, target: allowed.test, ports: [80, 443]}
  - {action: allow, target: "*.wild.test"}
  - {action: allow, target: rebind.test}
  - {action: allow, target: private.test}
  - {action: allow, target: ${NET.privateHost}, ports: [8080]}
`;

let topo: Topology;
let internet: JsonLinesProcess;
let sidecar: JsonLinesProcess;
let dir: string;
let cert: TestCert;

beforeAll(async () => {
  requireRootAndTools([
    "ip",
    "setpriv",
    "curl",
    "dig",
    "openssl",
    "iptables-nft-restore",
    "ip6tables-nft-restore",
    "nft",
  ]);
  await collectStaleNamespaces();
  dir = mkdtempSync(join(tmpdir(), "egress-e2e-"));
  chmodSync(dir, 0o755); // the workload (UID 1000) reads the CA, the sidecar the policy
  cert = makeTestCert(
    ["allowed.test", "*.wild.test", "denied.test", "rebind.test", "private.test"],
    dir,
  );
  chmodSync(cert.certPath, 0o644);
  writeFileSync(join(dir, "policy.yaml"), POLICY, { mode: 0o644 });

  topo = await createTopology();
  internet = topo.internet.spawn(
    tsNode("test/egress/support/internet-main.ts", {
      certPath: cert.certPath,
      keyPath: cert.keyPath,
      dnsHost: NET.dns,
      zone: ZONE,
    }),
  );
  await internet.waitFor((l) => l.event === "ready");

  topo.sandbox.etcFile("resolv.conf", `nameserver ${NET.dns}\noptions timeout:2 attempts:1\n`);
  // The real entry points, as the init container and the sidecar run them.
  const init = await topo.sandbox.exec(
    [
      ...CLI,
      "egress-init",
      `--policy-file=${join(dir, "policy.yaml")}`,
      `--sidecar-uid=${SIDECAR_UID}`,
      "--iptables=nft",
    ],
    { timeoutMs: 30_000 },
  );
  expect(init.code, init.stderr).toBe(0);

  sidecar = topo.sandbox.spawn([
    ...CLI,
    "egress",
    `--policy-file=${join(dir, "policy.yaml")}`,
    "--sandbox=tenant-a/sbx-e2e",
    `--upstream-dns=${NET.dns}:53`,
    `--sidecar-uid=${SIDECAR_UID}`,
    "--health-port=15021",
  ]);
  const ready = await sidecar.waitFor((l) => l.msg === "egress sidecar ready");
  expect(ready.uid).toBe(SIDECAR_UID);
}, 90_000);

afterAll(async () => {
  await topo?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface CurlResult {
  code: number | null;
  /** HTTP status of the response, 0 when none came back. */
  status: number;
  /** Status of the explicit proxy's answer to CONNECT, 0 when there was none. */
  connect: number;
  body: string;
  stderr: string;
}

/** curl as the workload; status 0 when no HTTP response came back. */
async function curl(args: string[], as = WORKLOAD): Promise<CurlResult> {
  const r = await topo.sandbox.exec(
    [
      "curl",
      "-sS",
      "--max-time",
      "6",
      "--connect-timeout",
      "3",
      "--cacert",
      cert.certPath,
      "-w",
      "\n%{http_connect} %{http_code}",
      ...args,
    ],
    { as, timeoutMs: 15_000 },
  );
  const lines = r.stdout.split("\n");
  const [connect, status] = (lines.pop() ?? "0 0").split(" ").map(Number) as [number, number];
  return { code: r.code, status, connect, body: lines.join("\n"), stderr: r.stderr };
}

const served = (r: CurlResult) =>
  JSON.parse(r.body) as { local: string; port: number; host: string };

async function dig(args: string[]): Promise<{ code: number | null; out: string }> {
  const r = await topo.sandbox.exec(["dig", "+time=2", "+tries=1", ...args], {
    as: WORKLOAD,
    timeoutMs: 15_000,
  });
  return { code: r.code, out: r.stdout + r.stderr };
}

/** Raw bytes to port 80 as the workload (redirected to the transparent listener). */
async function rawHttp(
  request: string,
): Promise<{ statuses: number[]; bodies: string[]; text: string }> {
  const r = await topo.sandbox.exec(
    [
      "/usr/bin/python3",
      join(REPO_ROOT, "test/egress/support/raw-http.py"),
      NET.allowed,
      "80",
      request,
    ],
    { as: WORKLOAD, timeoutMs: 15_000 },
  );
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

/** What reached the internet namespace since `mark` (an index into its log). */
const seenSince = (mark: number) => internet.lines.slice(mark);
const connectionsTo = (mark: number, local: string) =>
  seenSince(mark).filter((l) => l.event === "connection" && l.local === local);
const dnsSeen = (mark: number) =>
  seenSince(mark)
    .filter((l) => l.event === "dns")
    .map((l) => String(l.name));

describe("a sandboxed workload", () => {
  it("reaches an allowed name through the explicit proxy (CONNECT and plain http://)", async () => {
    const tls = await curl(["-x", PROXY, "https://allowed.test/via-connect"]);
    expect(tls.status, tls.stderr).toBe(200);
    expect(served(tls)).toMatchObject({ local: NET.allowed, port: 443, host: "allowed.test" });
    const plain = await curl(["-x", PROXY, "http://allowed.test/via-proxy"]);
    expect(plain.status, plain.stderr).toBe(200);
    expect(served(plain)).toMatchObject({ local: NET.allowed, port: 80, host: "allowed.test" });
  });

  it("reaches an allowed name transparently on 80 and 443, resolving through the DNS proxy", async () => {
    const http = await curl(["http://allowed.test/transparent"]);
    expect(http.status, http.stderr).toBe(200);
    expect(served(http)).toMatchObject({ local: NET.allowed, port: 80, host: "allowed.test" });
    const https = await curl(["https://allowed.test/transparent"]);
    expect(https.status, https.stderr).toBe(200);
    expect(served(https)).toMatchObject({ local: NET.allowed, port: 443 });
    const wild = await curl(["https://x.wild.test/"]);
    expect(served(wild)).toMatchObject({ local: NET.allowed, host: "x.wild.test" });
    const deep = await curl(["http://a.b.wild.test/"]);
    expect(served(deep)).toMatchObject({ local: NET.allowed, host: "a.b.wild.test" });
  });

  it("cannot reach a denied name, by any route", async () => {
    const mark = internet.lines.length;
    expect((await curl(["http://denied.test/"])).code).toBe(6); // NXDOMAIN from the DNS proxy
    const byHost = await curl(["--resolve", `denied.test:80:${NET.denied}`, "http://denied.test/"]);
    expect(byHost.status).toBe(403);
    expect(byHost.body).toContain("denied by the default action");
    expect(
      (await curl(["--resolve", `denied.test:443:${NET.denied}`, "https://denied.test/"])).status,
    ).toBe(0);
    expect((await curl(["-x", PROXY, "https://denied.test/"])).connect).toBe(403);
    expect(connectionsTo(mark, NET.denied)).toEqual([]);
    expect(dnsSeen(mark)).not.toContain("denied.test");
  });

  it("cannot reach a direct IP, nor an allowed name on another port", async () => {
    const mark = internet.lines.length;
    expect((await curl([`http://${NET.denied}/`])).status).toBe(403); // Host is an IP: no rule allows it
    expect((await curl(["-k", `https://${NET.denied}/`])).status).toBe(0); // no SNI: refused
    expect((await curl([`http://${NET.denied}:8080/`])).status).toBe(0); // not redirected: firewall
    expect((await curl([`http://${NET.allowed}:8080/`])).status).toBe(0);
    expect((await curl(["-x", PROXY, "http://allowed.test:8080/"])).status).toBe(403);
    expect((await curl(["-x", PROXY, `http://${NET.allowed}/`])).status).toBe(403);
    const udp = await dig([`@${NET.dns}`, "-p", "5353", "allowed.test"]);
    expect(udp.code).not.toBe(0);
    expect(connectionsTo(mark, NET.denied)).toEqual([]);
    expect(seenSince(mark).filter((l) => l.event === "connection" && l.port === 8080)).toEqual([]);
  });

  it("cannot use IPv6 at all, not even as the sidecar's UID", async () => {
    const mark = internet.lines.length;
    for (const as of [WORKLOAD, { uid: SIDECAR_UID }]) {
      const r = await curl(["-6", `http://[${NET.gateway6}]/`], as);
      expect(r.status).toBe(0);
      expect(r.code).not.toBe(0);
    }
    expect(seenSince(mark).filter((l) => l.event === "connection")).toEqual([]);
  });

  it("cannot reach the metadata address, directly or through an allowed name (DNS rebinding)", async () => {
    const mark = internet.lines.length;
    expect((await curl([`http://${NET.metadata}/latest/meta-data/`])).status).toBe(403);
    expect((await curl([`http://${NET.metadata}:8080/`])).status).toBe(0);
    const rebind = await curl(["-x", PROXY, "http://rebind.test/"]);
    expect(rebind.status).toBe(403);
    expect(rebind.body).toContain("reserved-address");
    expect(
      (await curl(["--resolve", `rebind.test:80:${NET.allowed}`, "http://rebind.test/"])).status,
    ).toBe(403);
    expect(connectionsTo(mark, NET.metadata)).toEqual([]);
  });

  it("reaches a private address only where an explicit address rule allows it", async () => {
    const viaName = await curl(["-x", PROXY, "http://private.test:8080/"]);
    expect(viaName.status, viaName.stderr).toBe(200);
    expect(served(viaName)).toMatchObject({ local: NET.privateHost, port: 8080 });
    const direct = await curl([`http://${NET.privateHost}:8080/`]); // accepted by the firewall itself
    expect(served(direct)).toMatchObject({ local: NET.privateHost, port: 8080 });
    expect((await curl(["-x", PROXY, "http://private.test/"])).status).toBe(403); // port 80: not in the rule
  });

  it("cannot leak data through DNS: the upstream never sees names the policy does not allow", async () => {
    const mark = internet.lines.length;
    const secret = `aGVsbG8.${Date.now()}.exfil.test`;
    const udp = await dig([`@${NET.dns}`, `u.${secret}`, "TXT"]);
    expect(udp.out).toContain("status: NXDOMAIN");
    const tcp = await dig(["+tcp", `@${NET.dns}`, `t.${secret}`]);
    expect(tcp.out).toContain("status: NXDOMAIN");
    const elsewhere = await dig([`@${NET.denied}`, `e.${secret}`]); // any server: redirected to the proxy
    expect(elsewhere.out).toContain("status: NXDOMAIN");
    expect((await curl(["-x", PROXY, `http://p.${secret}/`])).status).toBe(403);
    expect((await curl([`http://h.${secret}/`])).code).toBe(6);
    const allowed = await dig([`@${NET.dns}`, "allowed.test"]);
    expect(allowed.out).toContain(NET.allowed);
    const seen = dnsSeen(mark);
    expect(seen).toContain("allowed.test");
    expect(seen.filter((n) => n.includes("exfil"))).toEqual([]);
  });

  it("a denied IP carrying an allowed Host or SNI reaches the allowed name's own address", async () => {
    const mark = internet.lines.length;
    const http = await curl([
      "--resolve",
      `allowed.test:80:${NET.denied}`,
      "http://allowed.test/fronted",
    ]);
    expect(served(http)).toMatchObject({ local: NET.allowed, host: "allowed.test" });
    const https = await curl([
      "--resolve",
      `allowed.test:443:${NET.denied}`,
      "https://allowed.test/fronted",
    ]);
    expect(served(https)).toMatchObject({ local: NET.allowed, port: 443 });
    const metadata = await curl([
      "--resolve",
      `allowed.test:80:${NET.metadata}`,
      "http://allowed.test/",
    ]);
    expect(served(metadata)).toMatchObject({ local: NET.allowed });
    expect(connectionsTo(mark, NET.denied)).toEqual([]);
    expect(connectionsTo(mark, NET.metadata)).toEqual([]);
  });

  it("HTTP on port 80 is judged by the destination a server would use, request by request", async () => {
    const mark = internet.lines.length;
    const req = (target: string, ...hosts: string[]) =>
      `GET ${target} HTTP/1.1\\r\\n${hosts.map((h) => `Host: ${h}\\r\\n`).join("")}`;
    const last = "Connection: close\\r\\n\\r\\n";
    const more = "\\r\\n";
    // Two Host headers: a server might take either one.
    expect(await rawHttp(req("/", "allowed.test", "denied.test") + last)).toMatchObject({
      statuses: [400],
    });
    expect(await rawHttp(req("/", "denied.test", "allowed.test") + last)).toMatchObject({
      statuses: [400],
    });
    // Absolute form: a server routes by its authority, whatever Host says.
    expect(await rawHttp(req("http://denied.test/", "allowed.test") + last)).toMatchObject({
      statuses: [400],
    });
    const agreeing = await rawHttp(req("http://allowed.test/abs?q=1", "allowed.test") + last);
    expect(agreeing.statuses).toEqual([200]);
    // Forwarded in origin form, so the server sees exactly what was judged.
    expect(JSON.parse(agreeing.bodies[0]!)).toMatchObject({
      local: NET.allowed,
      host: "allowed.test",
      path: "/abs?q=1",
    });
    // Pipelined on one kept-alive connection: the second request is judged on its own.
    const switching = await rawHttp(
      req("/1", "allowed.test") + more + req("/2", "denied.test") + last,
    );
    expect(switching.statuses).toEqual([200, 403]);
    const absoluteSecond = await rawHttp(
      req("/1", "allowed.test") + more + req("http://denied.test/2", "allowed.test") + last,
    );
    expect(absoluteSecond.statuses).toEqual([200, 400]);
    const doubleSecond = await rawHttp(
      req("/1", "allowed.test") + more + req("/2", "allowed.test", "denied.test") + last,
    );
    expect(doubleSecond.statuses).toEqual([200, 400]);
    expect(connectionsTo(mark, NET.denied)).toEqual([]);
    expect(
      seenSince(mark).filter((l) => l.event === "request" && l.host !== "allowed.test"),
    ).toEqual([]);
  });

  it("cannot flush or loosen the firewall (no CAP_NET_ADMIN)", async () => {
    const before = await topo.sandbox.exec(["iptables-nft-save"]);
    for (const argv of [
      ["iptables", "-F"],
      ["iptables", "-t", "nat", "-F"],
      ["iptables", "-P", "OUTPUT", "ACCEPT"],
      ["ip6tables", "-F"],
      ["nft", "flush", "ruleset"],
    ]) {
      const r = await topo.sandbox.exec(argv, { as: WORKLOAD });
      expect(r.code, argv.join(" ")).not.toBe(0);
      expect(r.stderr, "the tool must exist for the refusal to mean anything").not.toMatch(
        /No such file|not found/,
      );
    }
    const after = await topo.sandbox.exec(["iptables-nft-save"]);
    const strip = (s: string) => s.replace(/^#.*$/gm, "").replace(/\[\d+:\d+\]/g, "");
    expect(strip(after.stdout)).toBe(strip(before.stdout));
    expect((await curl([`http://${NET.allowed}:8080/`])).status).toBe(0);
  });

  it("a policy change reaches the running sidecar without restarting the workload", async () => {
    const path = join(dir, "policy.yaml");
    const next = `${POLICY}  - {action: allow, target: denied.test}\n`;
    writeFileSync(`${path}.tmp`, next, { mode: 0o644 });
    (await import("node:fs")).renameSync(`${path}.tmp`, path);
    await eventually(
      async () => expect((await curl(["http://denied.test/"])).status).toBe(200),
      15_000,
      300,
    );
    writeFileSync(`${path}.tmp`, POLICY, { mode: 0o644 });
    (await import("node:fs")).renameSync(`${path}.tmp`, path);
    await eventually(
      async () => expect((await curl(["http://denied.test/"])).code).toBe(6),
      15_000,
      300,
    );
  });

  it("logs every decision with the sandbox, target, port, rule and verdict", () => {
    const decisions = sidecar.lines.filter(
      (l) => l.msg === "egress denied" || l.msg === "egress allowed",
    );
    expect(
      decisions.find((l) => l.target === "denied.test" && l.protocol === "http"),
    ).toMatchObject({
      sandbox: "tenant-a/sbx-e2e",
      port: 80,
      rule: "default",
      verdict: "deny",
    });
    expect(
      decisions.find((l) => l.target === "rebind.test" && l.protocol === "proxy-http"),
    ).toMatchObject({
      rule: "reserved-address",
      address: NET.metadata,
      verdict: "deny",
    });
    expect(
      decisions.find((l) => l.target === "allowed.test" && l.protocol === "tls"),
    ).toMatchObject({
      rule: 0,
      address: NET.allowed,
      verdict: "allow",
    });
  });

  it("from outside, the sidecar's health port answers probes only; metrics stay inside", async () => {
    const outside = (url: string) =>
      topo.internet.exec(["curl", "-sS", "--max-time", "3", "-w", "\n%{http_code}", url]);
    const ready = await outside(`http://${NET.sandbox}:15021/readyz`);
    expect(ready.stdout).toBe("ok\n\n200");
    expect((await outside(`http://${NET.sandbox}:15021/healthz`)).stdout).toMatch(/200$/);
    expect((await outside(`http://${NET.sandbox}:15021/metrics`)).stdout).toMatch(/404$/);
    const metricsPort = await outside(`http://${NET.sandbox}:15020/metrics`);
    expect(metricsPort.code).toBe(7); // connection refused: loopback only
    const inside = await topo.sandbox.exec(
      ["curl", "-sS", "--max-time", "3", "http://127.0.0.1:15020/metrics"],
      { as: WORKLOAD },
    );
    expect(inside.stdout).toContain("sandbox_egress_decisions_total");
  });

  it("killing the sidecar leaves egress closed", async () => {
    await sidecar.kill("SIGKILL");
    const mark = internet.lines.length;
    expect((await curl(["http://allowed.test/"])).status).toBe(0);
    expect(
      (await curl(["--resolve", `allowed.test:80:${NET.allowed}`, "http://allowed.test/"])).status,
    ).toBe(0);
    expect(
      (await curl(["--resolve", `allowed.test:443:${NET.allowed}`, "https://allowed.test/"]))
        .status,
    ).toBe(0);
    const viaProxy = await curl(["-x", PROXY, "https://allowed.test/"]);
    expect([viaProxy.status, viaProxy.connect]).toEqual([0, 0]);
    expect((await curl([`http://${NET.allowed}:8080/`])).status).toBe(0);
    expect((await dig([`@${NET.dns}`, "allowed.test"])).code).not.toBe(0);
    expect(seenSince(mark)).toEqual([]);
  });
});
