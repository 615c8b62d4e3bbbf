// The agent injected into a plain container on the real dockerd, the way the
// docker backend does it (AgentInjector: binary into a volume before start,
// one detached exec after), in the least friendly image there is: built FROM
// scratch with one static program, no shell, no libc, a read-only root file
// system, a non-root user and no capabilities. It checks that the workload
// keeps its entrypoint, PID 1, signals and exit code, and that the data plane
// works through the published port with the sandbox's credential only.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AGENT_PORT_KEY,
  AGENT_TOKEN_LABEL,
  AgentInjector,
  withAgentMount,
  withAgentPort,
} from "../../src/backends/docker/agent.js";
import { AgentClient } from "../../src/dataplane/client.js";
import { dockerAgentEndpoint, dockerLogs } from "../../src/dataplane/docker.js";
import {
  NotFoundError,
  PermissionDeniedError,
  ProcessStartError,
  UnauthorizedError,
} from "../../src/dataplane/errors.js";
import { buildAgent } from "../support/agent.js";
import { docker, ensureDockerd } from "../support/docker.js";
import { eventually } from "../support/eventually.js";
import { REPO_ROOT } from "../support/paths.js";

const IMAGE = "sandbox-operator/test-scratch-workload:latest";
const LABEL = `sandboxing.dev/test-agent-container=${process.pid}`;
let engine: Docker;
let injector: AgentInjector;
const containers: string[] = [];

/** An image FROM scratch: /workload (entrypoint) and nothing else. */
function buildScratchImage(): void {
  const dir = mkdtempSync(join(tmpdir(), "scratch-image-"));
  try {
    execFileSync(
      "go",
      [
        "build",
        "-trimpath",
        "-ldflags=-s -w",
        "-o",
        join(dir, "workload"),
        "./internal/testworkload",
      ],
      { cwd: join(REPO_ROOT, "agent"), env: { ...process.env, CGO_ENABLED: "0" } },
    );
    const tar = execFileSync("tar", ["-C", dir, "-c", "workload"]);
    execFileSync(
      "docker",
      ["import", "--change", 'ENTRYPOINT ["/workload"]', "--change", "WORKDIR /", "-", IMAGE],
      { input: tar },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function startSandbox(name: string, labels: Record<string, string> = {}) {
  const options = injector.withToken(
    withAgentMount(
      withAgentPort(
        {
          name,
          Image: IMAGE,
          User: "1000:1000",
          Labels: {
            "sandboxing.dev/namespace": "agent-test",
            "sandboxing.dev/sandbox": name,
            "sandboxing.dev/role": "workload",
            [LABEL.split("=")[0]!]: LABEL.split("=")[1]!,
            ...labels,
          },
          HostConfig: {
            ReadonlyRootfs: true,
            CapDrop: ["ALL"],
            SecurityOpt: ["no-new-privileges"],
            Tmpfs: { "/tmp": "rw,nosuid,nodev,mode=1777" },
          },
        },
        "127.0.0.1",
      ),
    ),
  );
  const created = await engine.createContainer(options);
  containers.push(created.id);
  await injector.deliver(created.id);
  await created.start();
  await injector.ensureStarted(await created.inspect());
  const info = await created.inspect();
  const port = Number(info.NetworkSettings.Ports[AGENT_PORT_KEY]?.[0]?.HostPort);
  const token = info.Config.Labels[AGENT_TOKEN_LABEL]!;
  const client = new AgentClient({ host: "127.0.0.1", port, token });
  await eventually(async () => expect(await client.healthy()).toBe(true), {
    timeout: 10_000,
    interval: 10,
  });
  return { id: created.id, client, token, port };
}

let a: Awaited<ReturnType<typeof startSandbox>>;
let b: Awaited<ReturnType<typeof startSandbox>>;

beforeAll(async () => {
  engine = await ensureDockerd();
  injector = new AgentInjector(engine, buildAgent());
  buildScratchImage();
  a = await startSandbox(`sbx-agent-test-a-${process.pid}`);
  b = await startSandbox(`sbx-agent-test-b-${process.pid}`);
}, 300_000);

afterAll(async () => {
  a?.client.close();
  b?.client.close();
  for (const id of containers) await docker(["rm", "-f", "-v", id]);
});

describe("the agent in a shell-less, read-only, unprivileged container", () => {
  it("keeps the image's entrypoint as PID 1 and runs as the workload's user", async () => {
    const cmdline = await a.client.readFile("/proc/1/cmdline");
    expect(cmdline.toString()).toBe("/workload\0");
    const v = await a.client.version();
    expect(v).toMatchObject({ uid: 1000, gid: 1000, cwd: "/" });
    expect(v.pid).not.toBe(1);
    // No capabilities: the agent's effective set is empty.
    const status = (await a.client.readText(`/proc/${v.pid}/status`)).split("\n");
    expect(status.find((l) => l.startsWith("CapEff:"))).toBe("CapEff:\t0000000000000000");
  });

  it("execs the image's own binaries: output, stderr, exit codes", async () => {
    expect(await a.client.exec(["/workload", "echo", "hi there"])).toMatchObject({
      stdout: "hi there\n",
      stderr: "",
      exitCode: 0,
    });
    expect(await a.client.exec(["/workload", "fail", "3"])).toMatchObject({
      stdout: "",
      stderr: "failing with 3\n",
      exitCode: 3,
    });
    expect((await a.client.exec(["/workload", "id"])).stdout).toMatch(/^uid=1000 gid=1000 /);
    await expect(a.client.exec(["sh", "-c", "true"])).rejects.toBeInstanceOf(ProcessStartError);
  });

  it("files: writable tmpfs, read-only root (EROFS), root-owned paths (EACCES)", async () => {
    const data = Buffer.from([0, 1, 2, 255, 254]);
    await a.client.writeFile("/tmp/dir with space/ü.bin", data, { parents: true });
    expect((await a.client.readFile("/tmp/dir with space/ü.bin")).equals(data)).toBe(true);
    await expect(a.client.writeFile("/new-file", "x")).rejects.toMatchObject({ code: "EROFS" });
    await expect(a.client.writeFile("/new-file", "x")).rejects.toBeInstanceOf(
      PermissionDeniedError,
    );
    await expect(a.client.readFile("/.sandbox/nope")).rejects.toBeInstanceOf(NotFoundError);
    // The agent's own binary is root's: the workload user cannot replace it.
    await expect(a.client.writeFile("/.sandbox/sandbox-agent", "x")).rejects.toMatchObject({
      code: "EACCES",
    });
  });

  it("refuses requests without the credential and with another sandbox's", async () => {
    for (const token of ["", b.token]) {
      const c = new AgentClient({ host: "127.0.0.1", port: a.port, token });
      await expect(c.exec(["/workload", "id"])).rejects.toBeInstanceOf(UnauthorizedError);
      await expect(c.readFile("/proc/1/cmdline")).rejects.toBeInstanceOf(UnauthorizedError);
      c.close();
    }
    expect(a.token).not.toBe(b.token);
  });

  it("finds the endpoint from labels, and logs come from the runtime", async () => {
    const ep = await dockerAgentEndpoint(engine, {
      namespace: "agent-test",
      name: `sbx-agent-test-a-${process.pid}`,
    });
    expect(ep).toEqual({ host: "127.0.0.1", port: a.port, token: a.token });
    const logs = await dockerLogs(engine, {
      namespace: "agent-test",
      name: `sbx-agent-test-a-${process.pid}`,
    });
    expect((await logs.stdout.toArray()).join("")).toMatch(/^workload started as pid 1\n/);
  });

  it("leaves signals and the exit code to the workload", async () => {
    const container = engine.getContainer(b.id);
    await container.stop({ t: 10 });
    const info = await container.inspect();
    expect(info.State.ExitCode).toBe(7);
    const logs = await dockerLogs(engine, {
      namespace: "agent-test",
      name: `sbx-agent-test-b-${process.pid}`,
    });
    expect((await logs.stdout.toArray()).join("")).toContain("workload got terminated");
  });
});
