// The in-sandbox agent on the docker backend.
//
// Delivered into the workload container before it starts: the binary goes
// into an anonymous volume mounted at /.sandbox (a volume, so it works with a
// read-only root filesystem and leaves the image untouched), with a per-sandbox
// credential kept as a label of the container.
//
// Started beside the entrypoint, not in front of it: once the container runs,
// one detached runtime exec starts the agent. The workload's command, image
// ENTRYPOINT/CMD, PID 1 (docker-init, then the workload), signals and exit
// code stay exactly what they were; the exec runs as the container's user,
// with its capabilities (none), its namespaces and its filesystem. A wrapper
// as PID 1 would have changed all of that. One runtime exec per sandbox (not
// per command) is the whole cost. Starting is idempotent: a second agent
// cannot bind the port and exits, so after an operator restart the exec is
// simply repeated.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type Docker from "dockerode";
import type { ContainerCreateOptions, ContainerInspectInfo } from "dockerode";
import { GROUP } from "../../api/group.js";
import { AGENT_PORT, AGENT_TOKEN_ENV } from "../../dataplane/protocol.js";
import { AGENT_DIR, AGENT_PATH, newAgentToken } from "../agent.js";
import { tarOf } from "./archive.js";

export { AGENT_DIR, AGENT_PATH, newAgentToken };
/** Label on the workload container holding the agent's credential (readable only through the Docker API). */
export const AGENT_TOKEN_LABEL = `${GROUP}/agent-token`;
/** Where the agent's port is published, in Docker's port key form. */
export const AGENT_PORT_KEY = `${AGENT_PORT}/tcp`;

/** The agent as the build leaves it: dist/agent/sandbox-agent, beside dist/cli/ (also in the image). */
export function defaultAgentBinary(): string | undefined {
  if (process.env.SANDBOX_AGENT_BINARY) return process.env.SANDBOX_AGENT_BINARY;
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const candidate = join(dir, "dist/agent/sandbox-agent");
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

/** Sidecar create options publishing the agent's port (the sidecar owns the network namespace). */
export function withAgentPort(
  options: ContainerCreateOptions,
  publishAddress: string,
): ContainerCreateOptions {
  const host = options.HostConfig ?? {};
  return {
    ...options,
    ExposedPorts: { ...options.ExposedPorts, [AGENT_PORT_KEY]: {} },
    HostConfig: {
      ...host,
      PortBindings: {
        ...host.PortBindings,
        [AGENT_PORT_KEY]: [{ HostIp: publishAddress, HostPort: "" }],
      },
    },
  };
}

/** Workload create options with the agent's volume (part of the spec hash). */
export function withAgentMount(options: ContainerCreateOptions): ContainerCreateOptions {
  const host = options.HostConfig ?? {};
  return {
    ...options,
    HostConfig: {
      ...host,
      // Anonymous: removed with the container (remove with v: true).
      Mounts: [...(host.Mounts ?? []), { Type: "volume", Source: "", Target: AGENT_DIR }],
    },
  };
}

export class AgentInjector {
  private archive: Buffer | undefined;
  /** Containers (ID@StartedAt) whose agent was started. */
  private readonly started = new Set<string>();

  constructor(
    private readonly docker: Docker,
    private readonly binary: string | undefined = defaultAgentBinary(),
  ) {}

  /** Create options with a new credential; called once, when the container is created. */
  withToken<T extends ContainerCreateOptions>(options: T): T {
    return { ...options, Labels: { ...options.Labels, [AGENT_TOKEN_LABEL]: newAgentToken() } };
  }

  /** Places the binary in the created (not yet started) container's agent volume. */
  async deliver(containerId: string): Promise<void> {
    if (!this.archive) {
      if (!this.binary || !existsSync(this.binary)) {
        throw new Error(
          `the sandbox agent binary was not found (${this.binary ?? "dist/agent/sandbox-agent"}): build it with \`make agent\` or set SANDBOX_AGENT_BINARY`,
        );
      }
      this.archive = await tarOf([
        { name: "sandbox-agent", content: readFileSync(this.binary), mode: 0o755, uid: 0, gid: 0 },
      ]);
    }
    await this.docker.getContainer(containerId).putArchive(this.archive, { path: AGENT_DIR });
  }

  /** Starts the agent in a running workload container, once per container start. */
  async ensureStarted(workload: ContainerInspectInfo): Promise<void> {
    if (!workload.State.Running) return;
    const key = `${workload.Id}@${workload.State.StartedAt}`;
    if (this.started.has(key)) return;
    const token = workload.Config.Labels?.[AGENT_TOKEN_LABEL];
    if (!token) return; // created before the agent existed: no data plane for it
    const container = this.docker.getContainer(workload.Id);
    try {
      const exec = await container.exec({
        Cmd: [AGENT_PATH],
        Env: [`${AGENT_TOKEN_ENV}=${token}`],
        AttachStdin: false,
        AttachStdout: false,
        AttachStderr: false,
        Tty: false,
      });
      await exec.start({ Detach: true });
    } catch (err) {
      // A workload that already ended (a short command) has nothing to serve:
      // its result is the container's exit, which observation reports.
      const now = await container.inspect().catch(() => undefined);
      if (!now?.State.Running) return;
      throw err;
    }
    this.started.add(key);
  }

  forget(containerId: string): void {
    for (const k of this.started) if (k.startsWith(`${containerId}@`)) this.started.delete(k);
  }
}
