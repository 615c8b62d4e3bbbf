// Warm pools and claims on the docker backend, against the real control plane
// and the real dockerd: a pooled sandbox has no egress at all; a claim's
// egress policy reaches the running sandbox live (same containers, no
// restart) before the claim reports Ready; the escape attacks fail on the
// claimed sandbox; a claim the pool cannot serve live is served cold; and the
// SDK runs a command in a claimed sandbox.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "../../packages/sdk/src/index.js";
import { Labels } from "../../src/api/labels.js";
import { buildAgent } from "../support/agent.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { docker, ensureDockerd, removeOwnedBy, SANDBOX_IMAGE } from "../support/docker.js";
import { type DockerInternet, INET, startDockerInternet } from "../support/docker-internet.js";
import { eventually } from "../support/eventually.js";
import { type RunningOperator, startDockerOperator, startPools } from "../support/operator.js";
import { REPO_ROOT } from "../support/paths.js";
import { PoolClient, type StoredClaim } from "../support/pools.js";
import type { StoredSandbox } from "../support/sandboxes.js";

const kc = kubeConfig();
const OWNER = `test-pools-${process.pid}`;
const ESCAPE_PY = join(REPO_ROOT, "test/egress/support/escape.py");
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

const containers = (s: StoredSandbox) => {
  const base = `sbx.${ns.name}.${s.metadata.name}.${s.metadata.uid!.slice(0, 8)}`;
  return { workload: base, sidecar: `${base}.egress` };
};

/** A python snippet in the workload container, as the workload's user. */
async function py(s: StoredSandbox, code: string) {
  return docker(["exec", containers(s).workload, "python3", "-c", code], 60_000);
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
  const { workload, sidecar } = containers(s);
  const [w, e] = await Promise.all([
    engine.getContainer(workload).inspect(),
    engine.getContainer(sidecar).inspect(),
  ]);
  return { workload: w.Id, sidecar: e.Id, started: [w.State.StartedAt, e.State.StartedAt] };
};

describe("a warm pool on the docker backend", () => {
  let claimed: StoredSandbox;

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
        containers(claimed).workload,
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

  it("serves an address rule cold (the firewall is installed at start), recorded as such", async () => {
    await api.claim("by-address", {
      templateRef: { name: "py" },
      egress: { rules: [{ action: "allow", target: `${INET.allowed}/32`, ports: [80] }] },
    });
    const c = await claimReady("by-address");
    expect(c.status?.source).toBe("Cold");
    expect(c.status?.coldReason).toContain("address rule");
    const s = (await api.sandboxes(`${Labels.claim}=by-address`))[0]!;
    expect(
      (
        await py(
          s,
          `import socket;socket.create_connection(('${INET.allowed}',80),timeout=5);print('connected')`,
        )
      ).stdout,
    ).toContain("connected");
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
