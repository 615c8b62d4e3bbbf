// Backend-neutral entry: given a Sandbox resource, reach its agent and its
// logs through whatever its backend offers. Docker: the loopback-published
// agent port and `docker logs`. Pod: `pods/portforward` to the agent on the
// Pod's loopback, the credential from the sandbox's agent Secret, and
// `pods/log`.
import type * as k8s from "@kubernetes/client-node";
import type Docker from "dockerode";
import type { Sandbox } from "../api/sandbox.js";
import { AgentClient } from "./client.js";
import { SandboxError, SandboxNotReadyError } from "./errors.js";
import type { LogOptions, LogStreams } from "./logs.js";
import type { PodPortForwarder } from "./pod.js";

export interface DataPlane {
  /** The agent's client, resolved on first use (logs need no agent: a finished workload has none). */
  agent(): Promise<AgentClient>;
  logs(options?: LogOptions): Promise<LogStreams>;
  /** Host and port on which a declared port of the sandbox is reachable from here. */
  port(port: number): Promise<{ host: string; port: number }>;
  close(): void;
}

export interface ConnectOptions {
  /** Docker client for docker-backend sandboxes (default: DOCKER_HOST or the local socket). */
  docker?: Docker;
  /** Kubernetes client configuration for pod-backend sandboxes (port-forward, Secret, logs). */
  kubeConfig?: k8s.KubeConfig;
}

async function defaultDocker(): Promise<Docker> {
  const { default: DockerCtor } = await import("dockerode");
  const host = process.env.DOCKER_HOST;
  if (host?.startsWith("unix://"))
    return new DockerCtor({ socketPath: host.slice("unix://".length) });
  return new DockerCtor();
}

/** A value resolved on first use; a failure is not kept, so the next use tries again. */
interface Lazy<T> {
  get(): Promise<T>;
  peek(): Promise<T> | undefined;
}

function lazy<T>(make: () => Promise<T>): Lazy<T> {
  let p: Promise<T> | undefined;
  return {
    get() {
      p ??= make();
      p.catch(() => {
        p = undefined;
      });
      return p;
    },
    peek: () => p,
  };
}

export async function connect(sandbox: Sandbox, options: ConnectOptions = {}): Promise<DataPlane> {
  const backend = sandbox.status?.backend ?? sandbox.spec.backend;
  const ref = {
    namespace: sandbox.metadata.namespace!,
    name: sandbox.metadata.name!,
    uid: sandbox.metadata.uid,
  };
  const where = `sandbox ${ref.namespace}/${ref.name}`;
  if (backend === "docker") return connectDocker(sandbox, ref, where, options);
  if (backend === "pod") {
    if (!options.kubeConfig)
      throw new SandboxError(`${where} runs on the pod backend: connecting needs a kubeconfig`);
    return connectPod(options.kubeConfig, ref);
  }
  throw new SandboxNotReadyError(`${where} has no backend yet (the operator has not seen it)`);
}

async function connectPod(
  kc: k8s.KubeConfig,
  ref: { namespace: string; name: string; uid?: string | undefined },
): Promise<DataPlane> {
  // Loaded here: docker-backend users do not pay for it, nor the reverse.
  const pod = await import("./pod.js");
  const agent = lazy(async () => {
    const { endpoint, forwarder } = await pod.podAgentEndpoint(kc, ref);
    return { client: new AgentClient(endpoint), forwarder };
  });
  const ports = new Map<number, Lazy<PodPortForwarder>>();
  return {
    agent: async () => (await agent.get()).client,
    logs: (o) => pod.podLogs(kc, ref, o),
    port: async (p) => {
      let f = ports.get(p);
      if (!f) {
        f = lazy(() => pod.podPortForward(kc, ref, p));
        ports.set(p, f);
      }
      const fwd = await f.get();
      return { host: fwd.host, port: fwd.port };
    },
    close: () => {
      agent.peek()?.then(
        (a) => {
          a.client.close();
          a.forwarder.close();
        },
        () => {},
      );
      for (const f of ports.values())
        f.peek()?.then(
          (x) => x.close(),
          () => {},
        );
    },
  };
}

async function connectDocker(
  sandbox: Sandbox,
  ref: { namespace: string; name: string; uid?: string | undefined },
  where: string,
  options: ConnectOptions,
): Promise<DataPlane> {
  const dockerTransport = await import("./docker.js");
  const docker = options.docker ?? (await defaultDocker());
  const agent = lazy(() =>
    dockerTransport.dockerAgentEndpoint(docker, ref).then((ep) => new AgentClient(ep)),
  );
  return {
    agent: () => agent.get(),
    logs: (o) => dockerTransport.dockerLogs(docker, ref, o),
    port: async (port) => {
      const decl = sandbox.spec.ports?.find((p) => p.port === port);
      const ep = decl && sandbox.status?.endpoints?.find((e) => e.name === decl.name);
      if (!ep)
        throw new SandboxNotReadyError(
          `${where} does not publish port ${port} (declare it in spec.ports)`,
        );
      return { host: ep.host, port: ep.port };
    },
    close: () => {
      agent.peek()?.then(
        (a) => a.close(),
        () => {},
      );
    },
  };
}
