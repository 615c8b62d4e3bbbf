// Warm pools and claims on the docker backend, against the real control plane
// and the real dockerd: a pooled sandbox has no egress at all; a claim's
// egress policy reaches the running sandbox live (same containers, no
// restart) before the claim reports Ready; the escape attacks fail on the
// claimed sandbox, also when its policy has address rules (the firewall holds
// no policy; the sidecar judges addresses live); and the SDK runs a command in
// a claimed sandbox.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "../../packages/sdk/src/index.js";
import { ConditionType } from "../../src/api/conditions.js";
import { Labels } from "../../src/api/labels.js";
import { parsePolicyAck, policyFileDigest } from "../../src/egress/policy-ack.js";
import { run } from "../egress/support/processes.js";
import { buildAgent } from "../support/agent.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import {
  containerNames,
  docker,
  ESCAPE_PY,
  ensureDockerd,
  escapeInWorkload,
  removeOwnedBy,
  SANDBOX_IMAGE,
} from "../support/docker.js";
import { type DockerInternet, INET, startDockerInternet } from "../support/docker-internet.js";
import { eventually } from "../support/eventually.js";
import { type RunningOperator, startDockerOperator, startPools } from "../support/operator.js";
import { PoolClient, type StoredClaim } from "../support/pools.js";
import type { StoredSandbox } from "../support/sandboxes.js";

const kc = kubeConfig();
const OWNER = `test-pools-${process.pid}`;
const SIDECAR_UID = 1337;

let ns: Awaited<ReturnType<typeof testNamespace>>;
let api: PoolClient;
let engine: Docker;
let internet: DockerInternet;
let operator: RunningOperator | undefined;
let pools: Awaited<ReturnType<typeof startPools>> | undefined;

beforeAll(async () => {
  engine = await ensureDockerd();
  buildAgent();
  internet = await startDockerInternet({
    "allowed.test": { A: [INET.allowed] },
    "denied.test": { A: [INET.denied] },
  });
  ns = await testNamespace(kc, "dpools");
  api = new PoolClient(kc, ns.name);
  operator = await startDockerOperator({
    namespace: ns.name,
    user: "operator-0",
    engine,
    owner: OWNER,
    upstreamDns: INET.dns,
  });
  pools = await startPools({ namespace: ns.name, defaultBackend: "docker" });
  await api.template("py", {
    backend: "docker",
    image: SANDBOX_IMAGE,
    command: ["sleep", "3600"],
    resources: { cpu: "250m", memory: "128Mi" },
  });
  await api.pool("py", { templateRef: { name: "py" }, replicas: 2 });
  await eventually(async () => expect((await api.getPool("py"))?.status?.readyReplicas).toBe(2), {
    timeout: 180_000,
    interval: 250,
  });
}, 600_000);

afterAll(async () => {
  await pools?.stop();
  await operator?.stop();
  await removeOwnedBy(OWNER);
  await ns?.delete();
  await internet?.destroy();
});

/** A python snippet in the workload container, as the workload's user. */
async function py(s: StoredSandbox, code: string) {
  return docker(["exec", containerNames(s).workload, "python3", "-c", code], 60_000);
}

const fetch = (host: string) =>
  `import urllib.request,sys\ntry:\n  r=urllib.request.urlopen('http://${host}/',timeout=5);print('status',r.status)\nexcept Exception as e:\n  print('refused',type(e).__name__)`;

async function claimReady(name: string): Promise<StoredClaim> {
  return eventually(
    async () => {
      const c = await api.getClaim(name);
      expect(c?.status?.phase, JSON.stringify(c?.status)).toBe("Ready");
      return c!;
    },
    { timeout: 120_000, interval: 20 },
  );
}

const ids = async (s: StoredSandbox) => {
  const { workload, sidecar } = containerNames(s);
  const [w, e] = await Promise.all([
    engine.getContainer(workload).inspect(),
    engine.getContainer(sidecar).inspect(),
  ]);
  return { workload: w.Id, sidecar: e.Id, started: [w.State.StartedAt, e.State.StartedAt] };
};

describe("a warm pool on the docker backend", () => {
  let claimed: StoredSandbox;
  let byAddress: StoredSandbox;

  it("keeps pooled sandboxes without egress; a claim's policy arrives live before Ready", async () => {
    const pooled = await api.sandboxes(`${Labels.pool}=py`);
    expect(pooled).toHaveLength(2);
    // Before any claim: nothing leaves, not even to what a claim will allow.
    for (const s of pooled) {
      expect((await py(s, fetch("allowed.test"))).stdout).toContain("refused");
    }
    const before = new Map(
      await Promise.all(pooled.map(async (s) => [s.metadata.name!, await ids(s)] as const)),
    );

    const t0 = performance.now();
    await api.claim("agent", {
      templateRef: { name: "py" },
      egress: { rules: [{ action: "allow", target: "allowed.test", ports: [80, 443] }] },
    });
    const c = await claimReady("agent");
    const observedMs = performance.now() - t0;
    expect(c.status?.source).toBe("Warm");
    claimed = (await api.sandboxes(`${Labels.claim}=agent`))[0]!;
    // Ready means the sidecar acknowledged the claim's policy file, byte for byte.
    const dir = `/run/sandbox-operator-test/${OWNER}/policies`;
    const uid = claimed.metadata.uid!;
    expect(parsePolicyAck(readFileSync(join(dir, "applied", uid), "utf8"))).toEqual({
      sha256: policyFileDigest(readFileSync(join(dir, uid, "policy.json"))),
      applied: true,
    });
    expect(
      claimed.status?.conditions?.find((x) => x.type === ConditionType.EgressReady)?.message,
    ).toContain(`acknowledged the policy of generation ${claimed.metadata.generation}`);
    // The very first request after Ready is judged by the claim's policy.
    expect((await py(claimed, fetch("allowed.test"))).stdout).toContain("status 200");
    expect((await py(claimed, fetch("denied.test"))).stdout).toContain("refused");
    // Same containers, never restarted: the policy reached the running sidecar.
    expect(await ids(claimed)).toEqual(before.get(claimed.metadata.name!));
    console.log(
      `warm claim -> Ready: ${Math.round(observedMs)} ms seen by the client, ${c.status?.readyMilliseconds} ms by the controller`,
    );
    // The other pooled sandbox still has no egress.
    const other = pooled.find((s) => s.metadata.name !== claimed.metadata.name)!;
    expect((await py(other, fetch("allowed.test"))).stdout).toContain("refused");
  });

  it("escape attacks fail on the claimed sandbox whose policy arrived at claim time", async () => {
    const script = readFileSync(ESCAPE_PY).toString("base64");
    const r = await docker(
      [
        "exec",
        containerNames(claimed).workload,
        "sh",
        "-c",
        `echo ${script} | base64 -d > /tmp/escape.py && python3 /tmp/escape.py "$@"`,
        "escape",
        "udp-dns",
        INET.dns,
        String(SIDECAR_UID),
        "allowed.test",
        "denied.test",
      ],
      90_000,
    );
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split("\n").pop()!);
    expect(out.sawSidecarPort).toBe(true);
    expect(out.addresses ?? []).not.toContain(INET.denied);
    expect(out.answered).toBe(false);
    const questions = internet.servers.lines
      .filter((l) => l.event === "dns")
      .map((l) => String(l.name));
    expect(questions).not.toContain("denied.test");
  });

  it("serves address rules warm: the claim's address policy arrives live, same containers", async () => {
    await eventually(async () => expect((await api.getPool("py"))?.status?.readyReplicas).toBe(2), {
      timeout: 120_000,
      interval: 100,
    });
    // Our clock, not the claim's creationTimestamp: that has whole seconds, so a
    // container started 200 ms before the claim can look younger than it.
    const claimedAt = Date.now();
    await api.claim("by-address", {
      templateRef: { name: "py" },
      egress: {
        rules: [
          // A name too, so the sidecar has an upstream DNS socket to attack below.
          { action: "allow", target: "allowed.test", ports: [80, 443] },
          { action: "allow", target: `${INET.allowed}/32`, ports: [80, 8080] },
        ],
      },
    });
    const c = await claimReady("by-address");
    expect(c.status?.source, c.status?.coldReason).toBe("Warm");
    byAddress = (await api.sandboxes(`${Labels.claim}=by-address`))[0]!;
    // Started before the claim existed: the policy reached the running containers.
    for (const started of (await ids(byAddress)).started) {
      expect(Date.parse(started)).toBeLessThan(claimedAt);
    }
    const dial = (host: string, port: number) =>
      py(
        byAddress,
        `import socket\ntry:\n  s=socket.create_connection(('${host}',${port}),timeout=5);s.sendall(b'GET / HTTP/1.0\\r\\nHost: ${host}\\r\\n\\r\\n');d=s.recv(4096);print('status', d.split(b' ')[1].decode() if d else 'empty')\nexcept Exception as e:\n  print('refused', type(e).__name__)`,
      );
    // The very first connections after Ready: the address rule's ports, directly.
    expect((await dial(INET.allowed, 8080)).stdout).toContain("status 200");
    expect((await dial(INET.allowed, 80)).stdout).toContain("status 200");
    expect((await dial(INET.denied, 8080)).stdout).not.toContain("status 200");
    expect((await dial(INET.allowed, 5432)).stdout).not.toContain("status 200");
  });

  it("escape attacks fail on the claimed sandbox whose address policy arrived at claim time", async () => {
    const inspected = await engine.getContainer(containerNames(byAddress).sidecar).inspect();
    const sidecarPid = String(inspected.State.Pid);
    const sidecarIp = Object.values(inspected.NetworkSettings.Networks)[0]!.IPAddress;
    const inNetns = (argv: string[], uid?: number) =>
      run(
        [
          ...["nsenter", "-t", sidecarPid, "-n", "--"],
          ...(uid === undefined
            ? []
            : ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--inh-caps=-all"]),
          ...argv,
        ],
        { timeoutMs: 30_000 },
      );
    const connections = (address: string) =>
      internet.servers.lines.filter((l) => l.event === "connection" && l.local === address).length;

    const udp = await escapeInWorkload(containerNames(byAddress).workload, [
      ...["udp-dns", INET.dns, String(SIDECAR_UID), "allowed.test", "denied.test"],
    ]);
    expect(udp.sawSidecarPort).toBe(true);
    expect(udp.addresses ?? []).not.toContain(INET.denied);
    expect(udp.answered).toBe(false);

    const localPort = "40124";
    const inserted = await inNetns([
      ...["conntrack", "-I", "-p", "tcp", "-s", sidecarIp, "-d", INET.denied],
      ...["--sport", localPort, "--dport", "8080", "-r", INET.denied, "-q", sidecarIp],
      ...["--reply-port-src", "8080", "--reply-port-dst", localPort],
      ...["--state", "ESTABLISHED", "--timeout", "120", "-u", "SEEN_REPLY,ASSURED"],
    ]);
    expect(inserted.code, inserted.stderr).toBe(0);
    const before = connections(INET.denied);
    expect(
      await escapeInWorkload(containerNames(byAddress).workload, [
        "tcp",
        INET.denied,
        "8080",
        localPort,
        "denied.test",
      ]),
    ).toMatchObject({ connected: false });
    expect(connections(INET.denied)).toBe(before);

    const own = await inNetns(
      ["/usr/bin/python3", ESCAPE_PY, "ping", INET.denied, "4243", "sidecar"],
      SIDECAR_UID,
    );
    expect(own.code, own.stderr).toBe(0);
    expect(JSON.parse(own.stdout)).toMatchObject({ replied: true, sender: INET.denied });
    expect(
      await escapeInWorkload(containerNames(byAddress).workload, [
        "ping",
        INET.denied,
        "4243",
        "exfil",
      ]),
    ).toMatchObject({
      replied: false,
    });
    const questions = internet.servers.lines
      .filter((l) => l.event === "dns")
      .map((l) => String(l.name));
    expect(questions).not.toContain("denied.test");
  });

  it("runs a command through the SDK in a claimed sandbox", async () => {
    await eventually(async () => expect((await api.getPool("py"))?.status?.readyReplicas).toBe(2), {
      timeout: 120_000,
      interval: 100,
    });
    const t0 = performance.now();
    await api.claim("sdk", { templateRef: { name: "py" } });
    const c = await claimReady("sdk");
    const box = await Sandbox.get(c.status!.sandboxName!, {
      kubeconfig: kc,
      namespace: ns.name,
      docker: engine,
    });
    const r = await box.exec(["echo", "hi"]);
    const ms = performance.now() - t0;
    expect(r).toMatchObject({ stdout: "hi\n", exitCode: 0 });
    console.log(`warm claim -> first exec output through the SDK: ${Math.round(ms)} ms`);
    expect(c.status?.source).toBe("Warm");
  });
});
