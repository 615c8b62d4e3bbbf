// Backend-neutral entry: given a Sandbox resource, reach its agent and its
// logs through whatever its backend offers. Docker: the loopback-published
// agent port and `docker logs`. Pod: not yet (see the pod backend's notes);
// the answer then says so instead of guessing.
import type Docker from "dockerode";
import type { Sandbox } from "../api/sandbox.js";
import { AgentClient } from "./client.js";
import { dockerAgentEndpoint, dockerLogs, type LogOptions, type LogStreams } from "./docker.js";
import { SandboxNotReadyError } from "./errors.js";

export interface DataPlane {
  /** The agent's client, resolved on first use (logs need no agent: a finished workload has none). */
  agent(): Promise<AgentClient>;
  logs(options?: LogOptions): Promise<LogStreams>;
  /** Host and port on which a declared port of the sandbox is reachable from here. */
  port(port: number): { host: string; port: number };
  close(): void;
}

export interface ConnectOptions {
  /** Docker client for docker-backend sandboxes (default: DOCKER_HOST or the local socket). */
  docker?: Docker;
}

async function defaultDocker(): Promise<Docker> {
  const { default: DockerCtor } = await import("dockerode");
  const host = process.env.DOCKER_HOST;
  if (host?.startsWith("unix://"))
    return new DockerCtor({ socketPath: host.slice("unix://".length) });
  return new DockerCtor();
}

export async function connect(sandbox: Sandbox, options: ConnectOptions = {}): Promise<DataPlane> {
  const backend = sandbox.status?.backend ?? sandbox.spec.backend;
  const ref = {
    namespace: sandbox.metadata.namespace!,
    name: sandbox.metadata.name!,
    uid: sandbox.metadata.uid,
  };
  const where = `sandbox ${ref.namespace}/${ref.name}`;
  if (backend !== "docker") {
    throw new SandboxNotReadyError(
      `${where} runs on the ${backend ?? "unknown"} backend: its data plane (pods/portforward to the agent) is not available in this version`,
    );
  }
  const docker = options.docker ?? (await defaultDocker());
  let agent: Promise<AgentClient> | undefined;
  return {
    agent: () => {
      agent ??= dockerAgentEndpoint(docker, ref).then((ep) => new AgentClient(ep));
      // A failed resolution is not cached: the next call tries again.
      agent.catch(() => {
        agent = undefined;
      });
      return agent;
    },
    logs: (o) => dockerLogs(docker, ref, o),
    port: (port) => {
      const decl = sandbox.spec.ports?.find((p) => p.port === port);
      const ep = decl && sandbox.status?.endpoints?.find((e) => e.name === decl.name);
      if (!ep)
        throw new SandboxNotReadyError(
          `${where} does not publish port ${port} (declare it in spec.ports)`,
        );
      return { host: ep.host, port: ep.port };
    },
    close: () => {
      agent?.then(
        (a) => a.close(),
        () => {},
      );
    },
  };
}
