// The data plane end to end on the docker backend: the real control plane,
// the operator with the docker backend against the real dockerd, and the SDK
// and the kubectl plugin driving sandboxes through the injected agent exactly
// as a user would (kubeconfig + the Docker host). The pod backend's data plane
// waits for the real node (issue 15); see docs/agent-protocol.md.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Sandbox } from "../../packages/sdk/src/index.js";
import { AgentClient } from "../../src/dataplane/client.js";
import { PermissionDeniedError, UnauthorizedError } from "../../src/dataplane/errors.js";
import { buildAgent, buildScratchImage, SCRATCH_IMAGE } from "../support/agent.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { ensureDockerd, removeOwnedBy, SANDBOX_IMAGE } from "../support/docker.js";
import { eventually } from "../support/eventually.js";
import { type RunningOperator, startDockerOperator } from "../support/operator.js";
import { REPO_ROOT } from "../support/paths.js";
import { runUnderPty } from "../support/pty.js";

const kc = kubeConfig();
let ns: Awaited<ReturnType<typeof testNamespace>>;
let engine: Docker;
let operator: RunningOperator | undefined;
const OWNER = `test-agent-${process.pid}`;
const SDK_DIR = join(REPO_ROOT, "packages/sdk");
const CLI = join(SDK_DIR, "dist/kubectl-sandbox.js");
let dockerHost: string;

beforeAll(async () => {
  engine = await ensureDockerd();
  dockerHost = `unix://${(engine.modem as { socketPath?: string }).socketPath}`;
  buildAgent();
  buildScratchImage();
  spawnSync("node", ["build.mjs"], { cwd: SDK_DIR, stdio: "inherit" });
  ns = await testNamespace(kc, "agent");
  operator = await startDockerOperator({
    namespace: ns.name,
    user: "operator-1",
    engine,
    owner: OWNER,
    upstreamDns: "127.0.0.1",
  });
}, 600_000);

afterAll(async () => {
  await operator?.stop();
  await removeOwnedBy(OWNER);
  await ns?.delete();
});

const sdk = () => ({ kubeconfig: kc, namespace: ns.name, docker: engine });

/**
 * The plugin as a child process, awaited without blocking: the operator runs
 * in this process and must keep reconciling while the CLI waits on it.
 */
const cli = (args: string[], input?: string) =>
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
    child.stdin.end(input ?? "");
  });

describe("the data plane on the docker backend", () => {
  let box: Sandbox;
  let plain: Sandbox;

  it("creates a sandbox through the SDK and drives it: exec, files, processes", async () => {
    box = await Sandbox.create(
      {
        image: SANDBOX_IMAGE,
        command: ["sleep", "3600"],
        ports: [{ name: "http", port: 8000 }],
        security: { readOnlyRootFilesystem: true },
      },
      { ...sdk(), name: "box" },
    );
    const r = await box.exec(["python3", "-c", "print(1+1)"]);
    expect(r).toMatchObject({ stdout: "2\n", stderr: "", exitCode: 0 });
    expect(await box.exec("echo err >&2; exit 5")).toMatchObject({ stderr: "err\n", exitCode: 5 });
    expect((await box.exec(["id", "-u"])).stdout).toBe("1000\n");

    await box.files.write("/workspace/data/ü x.txt", "hello", { parents: true });
    expect(await box.files.readText("/workspace/data/ü x.txt")).toBe("hello");
    expect((await box.exec(["cat", "/workspace/data/ü x.txt"])).stdout).toBe("hello");
    // Read-only root file system: the kernel's refusal, by name.
    const err = await box.files.write("/etc/x", "x").catch((e) => e);
    expect(err).toBeInstanceOf(PermissionDeniedError);
    expect(err.code).toBe("EROFS");

    const server = await box.spawn([
      "python3",
      "-m",
      "http.server",
      "8000",
      "--directory",
      "/workspace/data",
    ]);
    const res = await eventually(() => box.fetch(8000, "/%C3%BC%20x.txt"), { timeout: 20_000 });
    expect(await res.text()).toBe("hello");
    expect((await box.processes()).map((p) => p.id)).toContain(server.id);
    await server.kill();
  });

  it("runs an image's entrypoint when the Sandbox has no command, with the data plane beside it", async () => {
    plain = await Sandbox.create({ image: SCRATCH_IMAGE }, { ...sdk(), name: "plain" });
    const ps = (await plain.files.read("/proc/1/cmdline")).toString().split("\0");
    // docker-init (the backend's Init: true) as PID 1, the image's entrypoint under it.
    expect(ps).toContain("/workload");
    expect((await plain.exec(["/workload", "echo", "shell-less"])).stdout).toBe("shell-less\n");
    const logs = await plain.logs();
    expect((await logs.stdout.toArray()).join("")).toMatch(/^workload started as pid \d+\n/);
  });

  it("keeps credentials per sandbox", async () => {
    const boxEp = await (await import("../../src/dataplane/docker.js")).dockerAgentEndpoint(
      engine,
      { namespace: ns.name, name: "box" },
    );
    const plainEp = await (await import("../../src/dataplane/docker.js")).dockerAgentEndpoint(
      engine,
      { namespace: ns.name, name: "plain" },
    );
    expect(boxEp.token).not.toBe(plainEp.token);
    const crossed = new AgentClient({ ...boxEp, token: plainEp.token });
    await expect(crossed.exec(["true"])).rejects.toBeInstanceOf(UnauthorizedError);
    crossed.close();
  });

  it("renews the lifetime", async () => {
    const at = await box.renew(7200);
    await eventually(async () => {
      const r = await box.refresh();
      expect(Date.parse(r.status!.expiresAt!)).toBe(at.getTime());
    });
  });

  it("kubectl sandbox run: streams the output, exits with the code, removes the sandbox", {
    timeout: 240_000,
  }, async () => {
    const ok = await cli([
      "run",
      "--image",
      SANDBOX_IMAGE,
      "--name",
      "run1",
      "--",
      "python3",
      "-c",
      "print(1+1)",
    ]);
    expect(ok.stderr).toBe("");
    expect(ok.stdout).toBe("2\n");
    expect(ok.status).toBe(0);
    const failed = await cli([
      "run",
      "--image",
      SANDBOX_IMAGE,
      "--name",
      "run2",
      "--",
      "sh",
      "-c",
      "echo bad >&2; exit 3",
    ]);
    expect(failed.stderr).toBe("bad\n");
    expect(failed.status).toBe(3);
    await eventually(
      async () =>
        expect((await Sandbox.list(sdk())).map((s) => s.name).sort()).toEqual(["box", "plain"]),
      {
        timeout: 30_000,
      },
    );
  });

  // A dozen plugin invocations, each starting Node and client-node (2-4 s on this machine).
  it("kubectl sandbox exec, cp, ls, logs, renew", { timeout: 240_000 }, async () => {
    const e = await cli(["exec", "box", "--", "sh", "-c", "echo out; echo err >&2; exit 4"]);
    expect(e).toMatchObject({ stdout: "out\n", stderr: "err\n", status: 4 });
    expect((await cli(["exec", "-i", "box", "--", "wc", "-c"], "12345")).stdout.trim()).toBe("5");

    const local = mkdtempSync(join(tmpdir(), "cp-"));
    mkdirSync(join(local, "tree/sub"), { recursive: true });
    writeFileSync(join(local, "tree/sub/f.txt"), "in a tree");
    writeFileSync(join(local, "one.txt"), "one file");
    expect((await cli(["cp", join(local, "tree"), "box:/workspace/tree"])).status).toBe(0);
    expect((await cli(["cp", join(local, "one.txt"), "box:/workspace/"])).status).toBe(0);
    expect(await box.files.readText("/workspace/tree/sub/f.txt")).toBe("in a tree");
    expect(await box.files.readText("/workspace/one.txt")).toBe("one file");
    expect((await cli(["cp", "box:/workspace/tree", join(local, "back")])).status).toBe(0);
    expect((await cli(["cp", "box:/workspace/one.txt", join(local, "one-back.txt")])).status).toBe(
      0,
    );
    expect(readFileSync(join(local, "back/sub/f.txt"), "utf8")).toBe("in a tree");
    expect(readFileSync(join(local, "one-back.txt"), "utf8")).toBe("one file");

    const ls = await cli(["ls"]);
    expect(ls.stdout).toMatch(/^NAME\s+PHASE\s+BACKEND\s+READY/);
    expect(ls.stdout).toMatch(/\nbox\s+Running\s+docker\s+True/);
    expect((await cli(["logs", "plain"])).stdout).toMatch(/^workload started/);
    expect((await cli(["renew", "box", "--ttl", "600"])).stdout).toMatch(/^box expires at /);
    expect(await cli(["exec", "nope", "--", "true"])).toMatchObject({
      status: 1,
      stderr: expect.stringContaining("not found"),
    });
  });

  it("kubectl sandbox exec -it gives a real terminal (under a pseudo-terminal)", async () => {
    // python3's pty module: the CLI runs on a real terminal, as a person's would.
    const r = await runUnderPty(
      [
        "node",
        CLI,
        `--kubeconfig=${inject("kubeconfigPath")}`,
        `-n=${ns.name}`,
        "exec",
        "-it",
        "box",
        "--",
        "sh",
        "-c",
        "tty; stty size; read x; echo got=$x; exit 6",
      ],
      { env: { ...process.env, DOCKER_HOST: dockerHost }, timeoutMs: 90_000 },
    );
    expect(r.stdout).toMatch(/\/dev\/pts\/\d+/);
    expect(r.stdout).toContain("got=hello");
    expect(r.status).toBe(6);
  });

  it("deletes through the SDK", async () => {
    await box.delete();
    await plain.delete();
    await eventually(async () => expect(await Sandbox.list(sdk())).toEqual([]), {
      timeout: 60_000,
    });
  });
});
