// The agent injected into a plain container on the real dockerd, the way the
// docker backend does it (AgentInjector: binary into a volume before start,
// one detached exec after), in the least friendly image there is: built FROM
// scratch with one static program, no shell, no libc, a read-only root file
// system, a non-root user and no capabilities. It checks that the workload
// keeps its entrypoint, PID 1, signals and exit code, and that the data plane
// works through the published port with the sandbox's credential only.
import type Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentInjector } from "../../src/backends/docker/agent.js";
import { AgentClient } from "../../src/dataplane/client.js";
import { dockerAgentEndpoint, dockerLogs } from "../../src/dataplane/docker.js";
import {
  NotFoundError,
  PermissionDeniedError,
  ProcessStartError,
  UnauthorizedError,
} from "../../src/dataplane/errors.js";
import {
  buildAgent,
  buildScratchImage,
  type InjectedContainer,
  SCRATCH_IMAGE,
  startInjectedContainer,
} from "../support/agent.js";
import { docker, ensureDockerd } from "../support/docker.js";

const LABEL_KEY = "sandboxing.dev/test-agent-container";
let engine: Docker;
let injector: AgentInjector;
const containers: string[] = [];

const nameOf = (x: string) => `sbx-agent-test-${x}-${process.pid}`;

async function startSandbox(x: string) {
  const c = await startInjectedContainer(engine, injector, nameOf(x), SCRATCH_IMAGE, {
    "sandboxing.dev/namespace": "agent-test",
    "sandboxing.dev/sandbox": nameOf(x),
    "sandboxing.dev/role": "workload",
    [LABEL_KEY]: String(process.pid),
  });
  containers.push(c.id);
  return c;
}

let a: InjectedContainer;
let b: InjectedContainer;

beforeAll(async () => {
  engine = await ensureDockerd();
  injector = new AgentInjector(engine, buildAgent());
  buildScratchImage();
  a = await startSandbox("a");
  b = await startSandbox("b");
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
      name: nameOf("a"),
    });
    expect(ep).toEqual({ host: "127.0.0.1", port: a.port, token: a.token });
    const logs = await dockerLogs(engine, {
      namespace: "agent-test",
      name: nameOf("a"),
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
      name: nameOf("b"),
    });
    expect((await logs.stdout.toArray()).join("")).toContain("workload got terminated");
  });
});
