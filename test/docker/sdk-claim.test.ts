// Sandbox.claim and `kubectl sandbox claim|run --template` on the docker
// backend, against the real control plane, the real dockerd and the real
// agent, as a user drives them: a warm claim runs a command with its own
// egress policy in force, a cold claim (env) gets its env, deleting the handle
// removes claim, sandbox and containers, a claim that fails or times out
// leaves nothing behind, and the plugin claims and runs.
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import type Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ClaimFailedError, Sandbox, TimeoutError } from "../../packages/sdk/src/index.js";
import { Labels } from "../../src/api/labels.js";
import { buildAgent } from "../support/agent.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { ensureDockerd, labelled, removeOwnedBy, SANDBOX_IMAGE } from "../support/docker.js";
import { type DockerInternet, INET, startDockerInternet } from "../support/docker-internet.js";
import { eventually } from "../support/eventually.js";
import { type RunningOperator, startDockerOperator, startPools } from "../support/operator.js";
import { REPO_ROOT } from "../support/paths.js";
import { PoolClient } from "../support/pools.js";

const kc = kubeConfig();
const OWNER = `test-sdkclaim-${process.pid}`;
const SDK_DIR = join(REPO_ROOT, "packages/sdk");
const CLI = join(SDK_DIR, "dist/kubectl-sandbox.js");

let ns: Awaited<ReturnType<typeof testNamespace>>;
let api: PoolClient;
let engine: Docker;
let dockerHost: string;
let internet: DockerInternet;
let operator: RunningOperator | undefined;
let pools: Awaited<ReturnType<typeof startPools>> | undefined;

beforeAll(async () => {
  engine = await ensureDockerd();
  dockerHost = `unix://${(engine.modem as { socketPath?: string }).socketPath}`;
  buildAgent();
  spawnSync("node", ["build.mjs", "--no-types"], { cwd: SDK_DIR, stdio: "inherit" });
  internet = await startDockerInternet({
    "allowed.test": { A: [INET.allowed] },
    "denied.test": { A: [INET.denied] },
  });
  ns = await testNamespace(kc, "dsdkclaim");
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
  await poolFull();
}, 600_000);

afterAll(async () => {
  await pools?.stop();
  await operator?.stop();
  await removeOwnedBy(OWNER);
  await ns?.delete();
  await internet?.destroy();
});

const sdk = () => ({ kubeconfig: kc, namespace: ns.name, docker: engine });

async function poolFull() {
  await eventually(async () => expect((await api.getPool("py"))?.status?.readyReplicas).toBe(2), {
    timeout: 180_000,
    interval: 100,
  });
}

/** Claim, sandbox and containers of a claim are all gone. */
async function allGone(claim: { name: string; uid: string }, sandbox?: string) {
  await eventually(
    async () => {
      expect(await api.getClaim(claim.name)).toBeUndefined();
      expect(await api.sandboxes(`${Labels.claimUid}=${claim.uid}`)).toEqual([]);
      if (sandbox)
        expect(await labelled("container", `sandboxing.dev/sandbox=${sandbox}`)).toEqual([]);
    },
    { timeout: 120_000, interval: 250 },
  );
}

const fetchIn = (host: string) =>
  `import urllib.request\ntry:\n  r=urllib.request.urlopen('http://${host}/',timeout=5);print('status',r.status)\nexcept Exception as e:\n  print('refused',type(e).__name__)`;

describe("Sandbox.claim on the docker backend", () => {
  it("claims warm with its own egress policy and runs a command; delete removes everything", async () => {
    await poolFull();
    const t0 = performance.now();
    const box = await Sandbox.claim("py", {
      ...sdk(),
      egress: { rules: [{ action: "allow", target: "allowed.test", ports: [80] }] },
      labels: { team: "a" },
    });
    const first = await box.exec(["echo", "hi"]);
    const ms = performance.now() - t0;
    expect(first).toMatchObject({ stdout: "hi\n", exitCode: 0 });
    console.log(
      `Sandbox.claim -> first exec output: ${Math.round(ms)} ms (controller: claim Ready in ${box.claim?.readyMilliseconds} ms)`,
    );
    expect(box.claim).toMatchObject({ source: "Warm", pool: "py" });
    expect(box.claim?.readyMilliseconds).toBeGreaterThanOrEqual(0);
    expect(box.status?.phase).toBe("Running");
    // The claim's policy is in force on the first command after Ready.
    expect((await box.exec(["python3", "-c", fetchIn("allowed.test")])).stdout).toContain(
      "status 200",
    );
    expect((await box.exec(["python3", "-c", fetchIn("denied.test")])).stdout).toContain("refused");
    const claim = box.claim!;
    const name = box.name;
    await box.delete();
    await allGone(claim, name);
  });

  it("serves a claim with env cold, with the env in the workload", async () => {
    const box = await Sandbox.claim("py", { ...sdk(), env: { MODE: "cold-one" }, ttlSeconds: 600 });
    expect(box.claim).toMatchObject({ source: "Cold" });
    expect(box.claim?.coldReason).toMatch(/^env: /);
    expect(box.name).toBe(box.claim?.name);
    expect((await box.exec("echo $MODE")).stdout).toBe("cold-one\n");
    const claim = box.claim!;
    await box.delete();
    await allGone(claim, claim.name);
  });

  it("a missing template fails with the claim's condition, leaving nothing behind", async () => {
    const err = await Sandbox.claim("missing", { ...sdk(), name: "orphan" }).catch((e) => e);
    expect(err).toBeInstanceOf(ClaimFailedError);
    expect(err.reason).toBe("TemplateNotFound");
    expect(err.message).toContain("SandboxTemplate missing does not exist");
    expect(await api.getClaim("orphan")).toBeUndefined();
    expect(await api.sandboxes(`${Labels.claim}=orphan`)).toEqual([]);
  });

  it("a timeout is a TimeoutError; the claim and whatever it was bound to go", async () => {
    await poolFull();
    // Too short for anything: the claim may be bound by the time it is deleted.
    const err = await Sandbox.claim("py", { ...sdk(), name: "hasty", waitUntilReady: 1 }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(TimeoutError);
    expect(err.message).toMatch(/^claim .*\/hasty not ready after 1 ms: /);
    await eventually(
      async () => {
        expect(await api.getClaim("hasty")).toBeUndefined();
        expect(await api.sandboxes(`${Labels.claim}=hasty`)).toEqual([]);
      },
      { timeout: 120_000, interval: 250 },
    );
  });
});

describe("Sandbox.create and waitUntilReady wait by watch", () => {
  it("create resolves once Ready and the agent answers; a deleted sandbox ends a wait at once", async () => {
    const box = await Sandbox.create(
      {
        image: SANDBOX_IMAGE,
        command: ["sleep", "3600"],
        resources: { cpu: "250m", memory: "128Mi" },
      },
      { ...sdk(), name: "created" },
    );
    expect(box.status?.phase).toBe("Running");
    expect((await box.exec(["echo", "up"])).stdout).toBe("up\n");
    // Waiting again on a ready sandbox: the current state is read first, so it returns at once.
    const t0 = performance.now();
    await box.waitUntilReady({ timeoutMs: 30_000 });
    expect(performance.now() - t0).toBeLessThan(10_000);
    await box.delete();
    const err = await eventually(
      async () => {
        const e = await box.waitUntilReady({ timeoutMs: 30_000 }).catch((x) => x);
        expect(e?.name).toMatch(/SandboxNotFoundError|SandboxNotReadyError/);
        return e;
      },
      { timeout: 120_000, interval: 500 },
    );
    expect(err.message).toMatch(/^sandbox .*\/created (was deleted|is Terminating)/);
  });
});

/** The plugin as a child process (the operator runs in this process and must keep reconciling). */
const cli = (args: string[]) =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(
      "node",
      [CLI, `--kubeconfig=${inject("kubeconfigPath")}`, `-n=${ns.name}`, ...args],
      { env: { ...process.env, DOCKER_HOST: dockerHost } },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => {
      stdout += c;
    });
    child.stderr.on("data", (c) => {
      stderr += c;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("error", reject);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    child.stdin.end();
  });

describe("kubectl sandbox claim and run --template", () => {
  it("claim prints the sandbox's name (and on stderr how it was served); rm deletes the claim", async () => {
    await poolFull();
    const r = await cli(["claim", "--template", "py", "--allow", "allowed.test", "--ttl", "600"]);
    expect(r.status, r.stderr).toBe(0);
    const name = r.stdout.trim();
    expect(r.stderr).toMatch(new RegExp(`^claim sbx-\\w+: sandbox ${name} \\(Warm from pool py`));
    const [stored] = await api.sandboxes(`${Labels.claim}`);
    expect(stored?.metadata.name).toBe(name);
    expect(stored?.spec.network?.egress).toEqual({
      defaultAction: "deny",
      rules: [{ action: "allow", target: "allowed.test" }],
    });
    const claim = {
      name: stored!.metadata.labels![Labels.claim]!,
      uid: stored!.metadata.labels![Labels.claimUid]!,
    };
    const rm = await cli(["rm", name]);
    expect(rm.status, rm.stderr).toBe(0);
    await allGone(claim, name);
  });

  it("run --template runs COMMAND in a claimed sandbox, exits with its code, and deletes the claim", async () => {
    await poolFull();
    const r = await cli([
      ...["run", "--template", "py", "-e", "WHO=cli", "--name", "cli-run"],
      ...["--", "sh", "-c", "echo hello $WHO; echo oops >&2; exit 3"],
    ]);
    expect(r.status, r.stderr).toBe(3);
    expect(r.stdout).toBe("hello cli\n");
    expect(r.stderr).toContain("oops\n");
    await eventually(
      async () => {
        expect(await api.getClaim("cli-run")).toBeUndefined();
        expect(await api.sandboxes(`${Labels.claim}=cli-run`)).toEqual([]);
      },
      { timeout: 120_000, interval: 250 },
    );
  });

  it("claim of a missing template exits 1 with the condition's message", async () => {
    const r = await cli(["claim", "--template", "missing", "--name", "cli-missing"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^error: claim cli-missing: SandboxTemplate missing does not exist/);
    expect(await api.getClaim("cli-missing")).toBeUndefined();
  });
});
