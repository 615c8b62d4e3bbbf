// The in-sandbox agent for tests: built by `make agent` (a no-op when cached)
// and started as a plain local process on a free loopback port.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
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
