import type Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../egress/support/processes.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import {
  containerNames,
  ESCAPE_PY,
  ensureDockerd,
  escapeInWorkload,
  removeOwnedBy,
  SANDBOX_IMAGE,
} from "../support/docker.js";
import { type DockerInternet, INET, startDockerInternet } from "../support/docker-internet.js";
import { type RunningOperator, startDockerOperator } from "../support/operator.js";
import { isReady, SandboxClient, type StoredSandbox } from "../support/sandboxes.js";

const kc = kubeConfig();
const OWNER = `test-escape-${process.pid}`;
const SIDECAR_UID = 1337;

let ns: Awaited<ReturnType<typeof testNamespace>>;
let sbx: SandboxClient;
let engine: Docker;
let internet: DockerInternet;
let operator: RunningOperator | undefined;
let sandbox: StoredSandbox;
let sidecarPid: string;
let sidecarIp: string;

beforeAll(async () => {
  engine = await ensureDockerd();
  internet = await startDockerInternet({
    "allowed.test": { A: [INET.allowed] },
    "denied.test": { A: [INET.denied] },
  });
  ns = await testNamespace(kc, "escape");
  sbx = new SandboxClient(kc, ns.name);
  operator = await startDockerOperator({
    namespace: ns.name,
    user: "operator-1",
    engine,
    owner: OWNER,
    upstreamDns: INET.dns,
  });
  await sbx.create("escape", {
    image: SANDBOX_IMAGE,
    command: ["sleep", "3600"],
    network: {
      egress: {
        defaultAction: "deny",
        rules: [{ action: "allow", target: "allowed.test", ports: [80, 443] }],
      },
    },
  });
  sandbox = await sbx.waitFor(
    "escape",
    (s) => {
      isReady(s);
      expect(s.status?.phase).toBe("Running");
    },
    90_000,
  );
  const inspected = await engine.getContainer(containerNames(sandbox).sidecar).inspect();
  sidecarPid = String(inspected.State.Pid);
  sidecarIp = Object.values(inspected.NetworkSettings.Networks)[0]!.IPAddress;
}, 600_000);

afterAll(async () => {
  await operator?.stop();
  await removeOwnedBy(OWNER);
  await ns?.delete();
  await internet?.destroy();
});

/** A command in the sandbox's network namespace, from the host (root, or the sidecar's UID). */
const inSandboxNetns = (argv: string[], uid?: number) =>
  run(
    [
      "nsenter",
      "-t",
      sidecarPid,
      "-n",
      "--",
      ...(uid === undefined
        ? []
        : ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--inh-caps=-all"]),
      ...argv,
    ],
    { timeoutMs: 30_000 },
  );

const dnsQuestions = () =>
  internet.servers.lines.filter((l) => l.event === "dns").map((l) => String(l.name));
const connectionsTo = (address: string) =>
  internet.servers.lines.filter((l) => l.event === "connection" && l.local === address).length;

describe("docker backend: flows conntrack attributes to the sidecar", () => {
  it("UDP: the workload binds the port of the sidecar's closed upstream socket and cannot query the upstream", async () => {
    const r = await escapeInWorkload(containerNames(sandbox).workload, [
      "udp-dns",
      INET.dns,
      String(SIDECAR_UID),
      "allowed.test",
      "denied.test",
    ]);
    expect(r.sawSidecarPort).toBe(true); // the attack's precondition held
    expect(r.addresses ?? []).not.toContain(INET.denied);
    expect(r.answered).toBe(false);
    expect(dnsQuestions()).toContain("allowed.test");
    expect(dnsQuestions()).not.toContain("denied.test");
  });

  it("TCP: the workload cannot connect out on the tuple of a flow conntrack still tracks", async () => {
    const localPort = "40123";
    const inserted = await inSandboxNetns([
      ...["conntrack", "-I", "-p", "tcp", "-s", sidecarIp, "-d", INET.denied],
      ...["--sport", localPort, "--dport", "8080", "-r", INET.denied, "-q", sidecarIp],
      ...["--reply-port-src", "8080", "--reply-port-dst", localPort],
      ...["--state", "ESTABLISHED", "--timeout", "120", "-u", "SEEN_REPLY,ASSURED"],
    ]);
    expect(inserted.code, inserted.stderr).toBe(0);
    const before = connectionsTo(INET.denied);
    const r = await escapeInWorkload(containerNames(sandbox).workload, [
      "tcp",
      INET.denied,
      "8080",
      localPort,
      "denied.test",
    ]);
    expect(r).toMatchObject({ connected: false });
    expect(connectionsTo(INET.denied)).toBe(before);
  });

  it("ICMP: the workload cannot ping out with the identifier of the sidecar UID's echo", async () => {
    const own = await inSandboxNetns(
      ["/usr/bin/python3", ESCAPE_PY, "ping", INET.denied, "4242", "sidecar"],
      SIDECAR_UID,
    );
    expect(own.code, own.stderr).toBe(0);
    expect(JSON.parse(own.stdout)).toMatchObject({ replied: true, sender: INET.denied });
    expect(
      await escapeInWorkload(containerNames(sandbox).workload, [
        "ping",
        INET.denied,
        "4242",
        "exfil",
      ]),
    ).toMatchObject({
      replied: false,
    });
  });
});

describe("docker backend: the sidecar's health port from outside the sandbox", () => {
  it("answers probes only; metrics are not reachable", async () => {
    const get = (port: number, path: string) =>
      run([
        "curl",
        "-sS",
        "--max-time",
        "3",
        "-w",
        "\n%{http_code}",
        `http://${sidecarIp}:${port}${path}`,
      ]);
    expect((await get(15021, "/readyz")).stdout).toBe("ok\n\n200");
    expect((await get(15021, "/healthz")).stdout).toMatch(/200$/);
    expect((await get(15021, "/metrics")).stdout).toMatch(/404$/);
    expect((await get(15020, "/metrics")).code).toBe(7); // refused: loopback only
  });
});
