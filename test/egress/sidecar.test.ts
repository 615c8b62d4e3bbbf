// The sidecar on loopback, with real sockets: DNS proxy, explicit proxy,
// transparent Host/SNI listeners, decision logs, metrics, policy reload. The
// "internet" is servers on 127.0.0.1/127.0.0.2 and a local authoritative DNS
// server; the reserved ranges are overridden so loopback can stand in for
// public addresses (127.0.0.2 stays reserved to exercise the rebinding defense).
// Kernel-level enforcement (redirects, lockdown) is covered in sandbox-netns.test.ts.
import { chmodSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import type { Server } from "node:http";
import { request } from "node:http";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EgressSidecar, runEgressSidecar } from "../../src/egress/index.js";
import { type AuthoritativeDns, startAuthoritativeDns } from "./support/authoritative-dns.js";
import { makeTestCert } from "./support/certs.js";
import { addressesOf, askTcp, askUdp, dnsQuery, rcodeOf } from "./support/dns-client.js";
import { eventually } from "./support/eventually.js";
import { type CapturedLog, captureLog } from "./support/log-capture.js";
import { httpServer, httpsServer, listen, type Served } from "./support/web-servers.js";

const POLICY = `
defaultAction: deny
rules:
  - {action: deny, target: blocked.allowed.test}
  - {action: allow, target: allowed.test}
  - {action: allow, target: "*.allowed.test"}
  - {action: allow, target: rebind.test}
  - {action: allow, target: ports.test, ports: [1]}
`;

let dns: AuthoritativeDns;
let sidecar: EgressSidecar;
let log: CapturedLog;
let web: Server[] = [];
let httpPort: number;
let httpsPort: number;
let policyDir: string;
const cert = makeTestCert(["allowed.test", "*.allowed.test", "other.test", "rebind.test"]);

beforeAll(async () => {
  dns = await startAuthoritativeDns({
    host: "127.0.0.1",
    port: 0,
    zone: {
      "allowed.test": { A: ["127.0.0.1"], AAAA: ["::1"] },
      "*.allowed.test": { A: ["127.0.0.1"] },
      "other.test": { A: ["127.0.0.1"] },
      "rebind.test": { A: ["127.0.0.2"] },
      "ports.test": { A: ["127.0.0.1"] },
    },
  });
  const plain = httpServer();
  httpPort = await listen(plain, 0, "127.0.0.1");
  const secure = httpsServer(cert);
  httpsPort = await listen(secure, 0, "127.0.0.1");
  const plain2 = httpServer();
  await listen(plain2, httpPort, "127.0.0.2");
  web = [plain, secure, plain2];

  policyDir = mkdtempSync(join(tmpdir(), "egress-policy-"));
  chmodSync(policyDir, 0o755);
  writeFileSync(join(policyDir, "policy.yaml"), POLICY);
  log = captureLog();
  sidecar = await runEgressSidecar({
    sandboxId: "ns/sbx-1",
    policyPath: join(policyDir, "policy.yaml"),
    upstreamDns: `127.0.0.1:${dns.port}`,
    ports: { dns: 0, http: 0, tls: 0, proxy: 0 },
    health: { host: "127.0.0.1", port: 0 },
    metrics: { host: "127.0.0.1", port: 0 },
    destinationPorts: { http: httpPort, tls: httpsPort },
    reservedRanges: ["127.0.0.2/32", "10.0.0.0/8", "169.254.0.0/16"],
    pollIntervalMs: 200,
    logger: log.logger,
  });
});

afterAll(async () => {
  await sidecar?.close();
  await dns?.close();
  for (const s of web) s.close();
  if (policyDir) rmSync(policyDir, { recursive: true, force: true });
});

function decisions(target: string) {
  return log.lines.filter((l) => l.target === target);
}

describe("DNS proxy", () => {
  it("answers an allowed name with the upstream's answer, over UDP and TCP", async () => {
    const udp = await askUdp("127.0.0.1", sidecar.ports.dns, dnsQuery("allowed.test"));
    expect(rcodeOf(udp)).toBe("NOERROR");
    expect(addressesOf(udp)).toEqual(["127.0.0.1"]);
    const tcp = await askTcp("127.0.0.1", sidecar.ports.dns, dnsQuery("Deep.Sub.ALLOWED.test."));
    expect(addressesOf(tcp)).toEqual(["127.0.0.1"]);
  });

  it("answers NXDOMAIN for other names, which never reach the upstream, and logs the refusal", async () => {
    const secret = `c2VjcmV0.exfil-${Date.now()}.test`;
    for (const ask of [askUdp, askTcp]) {
      const reply = await ask("127.0.0.1", sidecar.ports.dns, dnsQuery(secret, "TXT"));
      expect(rcodeOf(reply)).toBe("NXDOMAIN");
    }
    expect(
      rcodeOf(await askUdp("127.0.0.1", sidecar.ports.dns, dnsQuery("blocked.allowed.test"))),
    ).toBe("NXDOMAIN");
    expect(dns.queries.some((q) => q.name.includes("exfil") || q.name.startsWith("blocked"))).toBe(
      false,
    );
    expect(decisions(secret.toLowerCase())[0]).toMatchObject({
      sandbox: "ns/sbx-1",
      protocol: "dns",
      port: 53,
      rule: "default",
      verdict: "deny",
      level: "warn",
    });
  });

  it("resolves a name allowed on some port only", async () => {
    expect(
      addressesOf(await askUdp("127.0.0.1", sidecar.ports.dns, dnsQuery("ports.test"))),
    ).toEqual(["127.0.0.1"]);
  });

  it("answers AAAA with no data (IPv6 egress is closed) without asking upstream", async () => {
    const before = dns.queries.length;
    const reply = await askUdp("127.0.0.1", sidecar.ports.dns, dnsQuery("allowed.test", "AAAA"));
    expect(rcodeOf(reply)).toBe("NOERROR");
    expect(reply.answers).toEqual([]);
    expect(dns.queries.length).toBe(before);
  });

  it("answers FORMERR to garbage with an ID", async () => {
    const reply = await askUdp(
      "127.0.0.1",
      sidecar.ports.dns,
      Buffer.from([0x12, 0x34, 0xff, 0xff, 0, 5]),
    );
    expect(reply.id).toBe(0x1234);
    expect(rcodeOf(reply)).toBe("FORMERR");
  });
});

/** Send a CONNECT and return the status line and the socket (tunnel if 200). */
function connectThrough(
  port: number,
  authority: string,
): Promise<{ status: number; body: string; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port }, () => {
      socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    });
    let data = "";
    const onData = (d: Buffer) => {
      data += d.toString("latin1");
      const end = data.indexOf("\r\n\r\n");
      if (end < 0) return;
      const status = Number(data.slice(9, 12));
      if (status === 200) {
        socket.removeListener("data", onData);
        return resolve({ status, body: "", socket });
      }
      socket.on("end", () => resolve({ status, body: data.slice(end + 4), socket }));
    };
    socket.on("data", onData);
    socket.on("error", reject);
  });
}

function httpsOver(socket: Socket, servername: string, path = "/"): Promise<Served> {
  return new Promise((resolve, reject) => {
    const tls = tlsConnect({ socket, servername, ca: cert.cert });
    tls.on("error", reject);
    tls.on("secureConnect", () => {
      tls.write(`GET ${path} HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`);
    });
    let data = "";
    tls.on("data", (d: Buffer) => {
      data += d.toString();
    });
    tls.on("end", () => {
      try {
        resolve(JSON.parse(data.slice(data.indexOf("\r\n\r\n") + 4)));
      } catch (err) {
        reject(err);
      }
    });
  });
}

function get(
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, headers, agent: false }, (res) => {
      let body = "";
      res.on("data", (d) => {
        body += d;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("explicit proxy", () => {
  it("tunnels CONNECT to an allowed name, end-to-end TLS", async () => {
    const { status, socket } = await connectThrough(
      sidecar.ports.proxy,
      `allowed.test:${httpsPort}`,
    );
    expect(status).toBe(200);
    expect(await httpsOver(socket, "allowed.test")).toMatchObject({
      local: "127.0.0.1",
      port: httpsPort,
      host: "allowed.test",
    });
  });

  it("refuses CONNECT to a denied name, a denied port and an IP literal, naming the reason", async () => {
    const other = await connectThrough(sidecar.ports.proxy, `other.test:${httpsPort}`);
    expect(other.status).toBe(403);
    expect(other.body).toContain("default action");
    expect((await connectThrough(sidecar.ports.proxy, `ports.test:${httpsPort}`)).status).toBe(403);
    expect((await connectThrough(sidecar.ports.proxy, `127.0.0.1:${httpsPort}`)).status).toBe(403);
    expect(decisions("127.0.0.1").at(-1)).toMatchObject({
      protocol: "proxy-connect",
      verdict: "deny",
      rule: "default",
    });
  });

  it("refuses an allowed name that resolves to a reserved address (DNS rebinding)", async () => {
    const r = await connectThrough(sidecar.ports.proxy, `rebind.test:${httpPort}`);
    expect(r.status).toBe(403);
    expect(r.body).toContain("reserved-address");
    expect(decisions("rebind.test").at(-1)).toMatchObject({
      rule: "reserved-address",
      address: "127.0.0.2",
      verdict: "deny",
    });
  });

  it("forwards absolute-URI http:// requests judged by the URI's host", async () => {
    const ok = await get(sidecar.ports.proxy, `http://allowed.test:${httpPort}/x?y=1`, {
      host: "evil.test",
    });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ host: `allowed.test:${httpPort}`, path: "/x?y=1" });
    expect((await get(sidecar.ports.proxy, `http://other.test:${httpPort}/`, {})).status).toBe(403);
    expect((await get(sidecar.ports.proxy, "/not-absolute", {})).status).toBe(400);
  });
});

describe("transparent listeners", () => {
  it("HTTP: judged by Host, connected to the name's own address", async () => {
    const ok = await get(sidecar.ports.http, "/hello", { host: "a.allowed.test" });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({
      local: "127.0.0.1",
      host: "a.allowed.test",
      path: "/hello",
    });
    expect((await get(sidecar.ports.http, "/", { host: "other.test" })).status).toBe(403);
    expect((await get(sidecar.ports.http, "/", { host: "127.0.0.1" })).status).toBe(403);
    expect((await get(sidecar.ports.http, "/", { host: "rebind.test" })).status).toBe(403);
  });

  it("HTTP: judges every request of a keep-alive connection (no fronting on a reused connection)", async () => {
    const socket = connect({ host: "127.0.0.1", port: sidecar.ports.http });
    await new Promise((r) => socket.once("connect", r));
    let data = "";
    socket.on("data", (d: Buffer) => {
      data += d.toString();
    });
    socket.write(
      "GET /1 HTTP/1.1\r\nHost: allowed.test\r\n\r\nGET /2 HTTP/1.1\r\nHost: other.test\r\n\r\n",
    );
    await eventually(() => expect(data).toContain("403 Forbidden"));
    expect(data).toContain("200 OK");
    socket.destroy();
  });

  it("HTTP: refuses several Host headers and an absolute form disagreeing with Host, pipelined too", async () => {
    const since = log.lines.length;
    const exchange = async (text: string) => {
      const socket = connect({ host: "127.0.0.1", port: sidecar.ports.http });
      let data = "";
      socket.on("data", (d: Buffer) => {
        data += d.toString();
      });
      const closed = new Promise((r) => socket.once("close", r));
      socket.write(text);
      await closed;
      return [...data.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]));
    };
    const close = "Connection: close\r\n\r\n";
    expect(
      await exchange(`GET / HTTP/1.1\r\nHost: allowed.test\r\nHost: other.test\r\n${close}`),
    ).toEqual([400]);
    expect(
      await exchange(`GET http://other.test/ HTTP/1.1\r\nHost: allowed.test\r\n${close}`),
    ).toEqual([400]);
    expect(
      await exchange(
        `GET /1 HTTP/1.1\r\nHost: allowed.test\r\n\r\nGET http://other.test/2 HTTP/1.1\r\nHost: allowed.test\r\n${close}`,
      ),
    ).toEqual([200, 400]);
    expect(
      await exchange(
        `GET /1 HTTP/1.1\r\nHost: allowed.test\r\n\r\nGET /2 HTTP/1.1\r\nHost: allowed.test\r\nHost: other.test\r\n${close}`,
      ),
    ).toEqual([200, 400]);
    expect(
      await exchange(`GET http://allowed.test/abs HTTP/1.1\r\nHost: allowed.test\r\n${close}`),
    ).toEqual([200]);
    const logged = log.lines.slice(since);
    expect(logged.filter((l) => l.target === "other.test")).toEqual([]);
    expect(
      logged.filter(
        (l) => l.protocol === "http" && /more than one Host|disagrees/.test(String(l.reason)),
      ),
    ).toHaveLength(4);
  });

  it("HTTP: refuses a request without Host", async () => {
    const socket = connect({ host: "127.0.0.1", port: sidecar.ports.http });
    let data = "";
    socket.on("data", (d: Buffer) => {
      data += d.toString();
    });
    socket.write("GET / HTTP/1.0\r\n\r\n");
    await eventually(() => expect(data).toContain("400 Bad Request"));
    socket.destroy();
  });

  it("TLS: judged by SNI without terminating TLS", async () => {
    const socket = connect({ host: "127.0.0.1", port: sidecar.ports.tls });
    await new Promise((r) => socket.once("connect", r));
    expect(await httpsOver(socket, "x.allowed.test")).toMatchObject({
      local: "127.0.0.1",
      port: httpsPort,
      host: "x.allowed.test",
    });
  });

  it("TLS: closes a connection whose SNI is denied, or that has no SNI", async () => {
    for (const servername of ["other.test", undefined]) {
      const outcome = await new Promise<string>((resolve) => {
        const tls = tlsConnect({
          host: "127.0.0.1",
          port: sidecar.ports.tls,
          servername,
          ca: cert.cert,
        });
        tls.on("secureConnect", () => resolve("connected"));
        tls.on("error", (err) => resolve(`error: ${err.message}`));
        tls.on("close", () => resolve("closed"));
      });
      expect(outcome).not.toBe("connected");
    }
    expect(decisions("other.test").at(-1)).toMatchObject({ protocol: "tls", verdict: "deny" });
    expect(
      log.lines.some((l) => l.protocol === "tls" && l.reason === "ClientHello without SNI"),
    ).toBe(true);
  });
});

describe("observability", () => {
  it("counts decisions in Prometheus metrics and serves health", async () => {
    const metrics = await get(sidecar.ports.metrics!, "/metrics", {});
    expect(metrics.body).toMatch(
      /sandbox_egress_decisions_total\{verdict="deny",protocol="dns"\} [1-9]/,
    );
    expect(metrics.body).toMatch(
      /sandbox_egress_decisions_total\{verdict="allow",protocol="tls"\} [1-9]/,
    );
    expect((await get(sidecar.ports.metrics!, "/readyz", {})).status).toBe(200);
  });

  it("the probe endpoint serves /healthz and /readyz only, without details", async () => {
    const probe = sidecar.ports.health!;
    expect(await get(probe, "/readyz", {})).toMatchObject({ status: 200, body: "ok\n" });
    expect((await get(probe, "/healthz", {})).status).toBe(200);
    expect((await get(probe, "/metrics", {})).status).toBe(404);
    expect(probe).not.toBe(sidecar.ports.metrics);
  });

  it("logs one line per decision with sandbox, target, port, rule and verdict", () => {
    const allowed = log.lines.find((l) => l.protocol === "proxy-connect" && l.verdict === "allow");
    expect(allowed).toMatchObject({
      sandbox: "ns/sbx-1",
      target: "allowed.test",
      port: httpsPort,
      rule: 1,
      address: "127.0.0.1",
      msg: "egress allowed",
    });
  });
});

describe("policy reload", () => {
  it("follows the file through a ConfigMap-style symlink swap, and fails closed on a bad policy", async () => {
    // Lay the directory out like a ConfigMap volume: policy.yaml -> ..data/policy.yaml.
    const dir = mkdtempSync(join(tmpdir(), "egress-cm-"));
    const version = (n: number, text: string) => {
      const v = join(dir, `..v${n}`);
      rmSync(v, { recursive: true, force: true });
      mkdtempSync(join(dir, "tmp-")); // unrelated churn in the directory
      writeFileSync(join(dir, `..v${n}.yaml`), text);
      symlinkSync(`..v${n}.yaml`, join(dir, "..data_tmp"));
      renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
    };
    version(1, "defaultAction: deny\nrules: [{action: allow, target: allowed.test}]\n");
    symlinkSync("..data", join(dir, "policy.yaml"));
    const local = captureLog();
    const s = await runEgressSidecar({
      sandboxId: "ns/reload",
      policyPath: join(dir, "policy.yaml"),
      upstreamDns: `127.0.0.1:${dns.port}`,
      ports: { dns: 0, http: 0, tls: 0, proxy: 0 },
      health: { host: "127.0.0.1", port: 0 },
      metrics: false,
      destinationPorts: { http: httpPort, tls: httpsPort },
      reservedRanges: [],
      pollIntervalMs: 200,
      logger: local.logger,
    });
    try {
      expect((await get(s.ports.http, "/", { host: "other.test" })).status).toBe(403);
      version(2, "defaultAction: deny\nrules: [{action: allow, target: other.test}]\n");
      await eventually(async () =>
        expect((await get(s.ports.http, "/", { host: "other.test" })).status).toBe(200),
      );
      expect((await get(s.ports.http, "/", { host: "allowed.test" })).status).toBe(403);

      version(3, "rules: [{action: allow, target: 'bad_name!'}]\n");
      await eventually(async () =>
        expect((await get(s.ports.health!, "/readyz", {})).status).toBe(503),
      );
      expect((await get(s.ports.http, "/", { host: "other.test" })).status).toBe(403);
      expect(local.lines.some((l) => String(l.err).includes("rules[0].target"))).toBe(true);

      version(4, "defaultAction: deny\nrules: [{action: allow, target: other.test}]\n");
      await eventually(async () =>
        expect((await get(s.ports.health!, "/readyz", {})).status).toBe(200),
      );
      expect((await get(s.ports.http, "/", { host: "other.test" })).status).toBe(200);
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses to start on an invalid policy, naming the rule", async () => {
    await expect(
      runEgressSidecar({
        sandboxId: "ns/bad",
        policy: {
          rules: [
            { action: "allow", target: "ok.test" },
            { action: "allow", target: "a..b" },
          ],
        },
        upstreamDns: "127.0.0.1:1",
        ports: { dns: 0, http: 0, tls: 0, proxy: 0 },
        health: false,
        metrics: false,
        logger: captureLog().logger,
      }),
    ).rejects.toThrow(/rules\[1\]\.target/);
  });
});
