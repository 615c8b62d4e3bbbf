// The in-sandbox agent for tests: built by `make agent` (a no-op when cached)
// and started as a plain local process on a free loopback port.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type Docker from "dockerode";
import {
  AGENT_PORT_KEY,
  AGENT_TOKEN_LABEL,
  type AgentInjector,
  withAgentMount,
  withAgentPort,
} from "../../src/backends/docker/agent.js";
import { AgentClient } from "../../src/dataplane/client.js";
import { AGENT_TOKEN_ENV } from "../../src/dataplane/protocol.js";
import { REPO_ROOT } from "./paths.js";

export const AGENT_BINARY = join(REPO_ROOT, "dist/agent/sandbox-agent");

export function buildAgent(): string {
  execFileSync("make", ["--no-print-directory", "agent"], { cwd: REPO_ROOT, stdio: "ignore" });
  if (!existsSync(AGENT_BINARY)) throw new Error(`make agent did not produce ${AGENT_BINARY}`);
  return AGENT_BINARY;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

export interface LocalAgent {
  client: AgentClient;
  token: string;
  port: number;
  proc: ChildProcess;
  stop(): Promise<void>;
}

export async function startLocalAgent(cwd: string): Promise<LocalAgent> {
  const bin = buildAgent();
  const port = await freePort();
  const token = randomBytes(32).toString("base64url");
  const proc = spawn(bin, ["--listen", `127.0.0.1:${port}`], {
    cwd,
    env: { ...process.env, [AGENT_TOKEN_ENV]: token },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const client = new AgentClient({ host: "127.0.0.1", port, token });
  const deadline = Date.now() + 5000;
  while (!(await client.healthy())) {
    if (Date.now() > deadline) throw new Error("local agent did not become healthy");
    await new Promise((r) => setTimeout(r, 5));
  }
  return {
    client,
    token,
    port,
    proc,
    stop: async () => {
      client.close();
      proc.kill("SIGTERM");
      await new Promise((r) => proc.once("exit", r));
    },
  };
}

/** An image FROM scratch holding one static program, /workload (its entrypoint; see agent/internal/testworkload). */
export const SCRATCH_IMAGE = "sandbox-operator/test-scratch-workload:latest";

export function buildScratchImage(): string {
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
    execFileSync("tar", ["-C", dir, "-cf", join(dir, "image.tar"), "workload"]);
    execFileSync(
      "docker",
      [
        "import",
        "--change",
        'ENTRYPOINT ["/workload"]',
        "--change",
        "WORKDIR /",
        join(dir, "image.tar"),
        SCRATCH_IMAGE,
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
    return SCRATCH_IMAGE;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface InjectedContainer {
  id: string;
  client: AgentClient;
  token: string;
  port: number;
}

/**
 * A hardened container (read-only root, UID 1000, no capabilities, a tmpfs
 * /tmp) with the agent delivered and started exactly as the docker backend
 * does it (AgentInjector), its port published on loopback.
 */
export async function startInjectedContainer(
  engine: Docker,
  injector: AgentInjector,
  name: string,
  image: string,
  labels: Record<string, string> = {},
): Promise<InjectedContainer> {
  const options = injector.withToken(
    withAgentMount(
      withAgentPort(
        {
          name,
          Image: image,
          User: "1000:1000",
          Labels: labels,
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
  await injector.deliver(created.id);
  await created.start();
  await injector.ensureStarted(await created.inspect());
  const info = await created.inspect();
  const port = Number(info.NetworkSettings.Ports[AGENT_PORT_KEY]?.[0]?.HostPort);
  const token = info.Config.Labels[AGENT_TOKEN_LABEL]!;
  const client = new AgentClient({ host: "127.0.0.1", port, token });
  const deadline = Date.now() + 10_000;
  while (!(await client.healthy())) {
    if (Date.now() > deadline) throw new Error(`agent in ${name} did not become healthy`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return { id: created.id, client, token, port };
}
