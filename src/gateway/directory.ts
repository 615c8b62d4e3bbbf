// Where sandboxes are: an informer cache of Sandboxes (the gateway keeps no
// state of its own, so any replica answers any request), and how to reach a
// sandbox's agent and ports from here. The agent's credential stays here:
// clients present their own credential to the gateway and never see it.
import type * as k8s from "@kubernetes/client-node";
import type Docker from "dockerode";
import { GROUP, SANDBOX_PLURAL, VERSION } from "../api/group.js";
import { IdleMark } from "../api/idle.js";
import type { Sandbox } from "../api/sandbox.js";
import { deriveAgentToken } from "../backends/agent.js";
import { Informer, type KubeObject } from "../controller/informer.js";
import type { AgentEndpoint } from "../dataplane/client.js";
import {
  dockerAgentEndpoint,
  dockerLogs,
  type LogOptions,
  type LogStreams,
} from "../dataplane/docker.js";
import { SandboxError } from "../dataplane/errors.js";
import { podLogs } from "../dataplane/pod.js";
import { AGENT_PORT } from "../dataplane/protocol.js";
import type { Logger } from "../observability/logger.js";
import { GatewayError } from "./errors.js";
import { BoundedCache } from "./limits.js";

export type SandboxObject = Sandbox & KubeObject;

/** Keep what routing and authorization read; the rest of a Sandbox never enters the cache. */
export function gatewayView(s: SandboxObject): SandboxObject {
  const m = s.metadata;
  const spec = (s.spec ?? {}) as { suspended?: boolean };
  return {
    apiVersion: s.apiVersion,
    kind: s.kind,
    metadata: {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      ...(m.creationTimestamp ? { creationTimestamp: m.creationTimestamp } : {}),
      ...(m.deletionTimestamp ? { deletionTimestamp: m.deletionTimestamp } : {}),
      // Only the idle mark: whether a call may wake the sandbox (docs/idle.md).
      ...(m.annotations?.[IdleMark.annotation]
        ? { annotations: { [IdleMark.annotation]: m.annotations[IdleMark.annotation] } }
        : {}),
    },
    spec: {
      backend: s.spec?.backend,
      ports: s.spec?.ports,
      ...(spec.suspended !== undefined ? { suspended: spec.suspended } : {}),
    } as Sandbox["spec"],
    ...(s.status ? { status: s.status } : {}),
  } as SandboxObject;
}

export function sandboxInformer(
  kubeConfig: k8s.KubeConfig,
  log: Logger,
  namespaces?: string[],
): Informer<SandboxObject> {
  return new Informer<SandboxObject>({
    kubeConfig,
    apiPath: `/apis/${GROUP}/${VERSION}`,
    resource: SANDBOX_PLURAL,
    ...(namespaces ? { namespaces } : {}),
    transform: gatewayView,
    log,
  });
}

/** How a backend's sandboxes are reached from the gateway. */
export interface Reach {
  agent(s: SandboxObject): Promise<AgentEndpoint>;
  /** Forget a cached endpoint that failed (the sandbox may have restarted elsewhere). */
  forget(s: SandboxObject): void;
  /** Host and port of a declared port. */
  port(s: SandboxObject, port: number): { host: string; port: number };
  logs(s: SandboxObject, o: LogOptions): Promise<LogStreams>;
}

const notReady = (s: SandboxObject, why: string) =>
  new GatewayError(
    503,
    "SANDBOX_NOT_READY",
    `sandbox ${s.metadata.namespace}/${s.metadata.name}: ${why}`,
  );

function declaredEndpoint(s: SandboxObject, port: number): { host: string; port: number } {
  const decl = s.spec.ports?.find((p) => p.port === port);
  const ep = decl && s.status?.endpoints?.find((e) => e.name === decl.name);
  if (!ep) throw notReady(s, `port ${port} has no endpoint yet`);
  return { host: ep.host, port: ep.port };
}

/**
 * How the gateway reaches docker-backend sandboxes:
 * - `published`: the addresses Docker publishes the agent's and the declared
 *   ports on (the sandbox's status endpoints), through Docker's userland proxy;
 *   works wherever those addresses are reachable, e.g. a remote daemon that
 *   publishes on its own interface;
 * - `bridge`: the sidecar's address on the sandbox's network (status.ip), over
 *   the Docker host's bridge: one process and one loopback hop fewer per
 *   request than through the userland proxy (bench/gateway/run.ts), needs the
 *   gateway in the Docker host's network namespace. The sandbox sees the same
 *   peer either way (the bridge's address), so its firewall admits the same.
 */
export type DockerRoute = "bridge" | "published";

/**
 * Docker backend: the agent's address (see DockerRoute) and its credential
 * from the workload container's label, both through the Docker API; resolved
 * once per sandbox incarnation (UID) and cached.
 */
export class DockerReach implements Reach {
  private readonly endpoints = new BoundedCache<AgentEndpoint>(10_000, 60_000);

  constructor(
    private readonly docker: Docker,
    private readonly route: DockerRoute = "published",
  ) {}

  async agent(s: SandboxObject): Promise<AgentEndpoint> {
    const uid = s.metadata.uid!;
    const hit = this.endpoints.get(uid);
    if (hit) return hit;
    try {
      const published = await dockerAgentEndpoint(this.docker, {
        namespace: s.metadata.namespace!,
        name: s.metadata.name!,
        uid,
      });
      const bridge = this.bridgeAddress(s);
      const ep = bridge ? { ...published, host: bridge, port: AGENT_PORT } : published;
      this.endpoints.set(uid, ep);
      return ep;
    } catch (err) {
      throw notReady(s, (err as Error).message);
    }
  }

  forget(s: SandboxObject): void {
    this.endpoints.delete(s.metadata.uid!);
  }

  port(s: SandboxObject, port: number) {
    const published = declaredEndpoint(s, port);
    const bridge = this.bridgeAddress(s);
    return bridge ? { host: bridge, port } : published;
  }

  /** The sidecar's address on the sandbox network, when routing over the bridge. */
  private bridgeAddress(s: SandboxObject): string | undefined {
    return this.route === "bridge" ? s.status?.ip : undefined;
  }

  logs(s: SandboxObject, o: LogOptions): Promise<LogStreams> {
    return dockerLogs(
      this.docker,
      { namespace: s.metadata.namespace!, name: s.metadata.name!, uid: s.metadata.uid! },
      o,
    );
  }
}

/**
 * Pod backend: the pod's IP, straight over the pod network, never through
 * pods/exec or pods/portforward. Declared ports as the sandbox NetworkPolicy
 * admits them to anyone; the agent's port as it admits it to the gateway's
 * Pods in the gateway's namespace (the operator's --gateway-namespace). The
 * agent's credential is derived from the key shared with the operator and the
 * sandbox's UID (deriveAgentToken), so no Secret is read; without the key the
 * agent routes answer 503.
 *
 * Logs are the workload's output as the runtime captured it: the kubelet
 * holds it, not the agent (the workload's stdout is the container's, which the
 * agent never sees), so they are read from `pods/log` through the apiserver,
 * as the direct transport does. That subresource is read-only (it runs nothing
 * in the sandbox, unlike pods/exec and pods/portforward, which the gateway
 * still never uses); the caller was authorized for the `logs` verb on this
 * sandbox before, and the Pod read is the one this incarnation's status names
 * (status.podName), so a re-created sandbox's token never reads its
 * predecessor's Pod.
 */
export class PodReach implements Reach {
  constructor(
    private readonly agentKey?: Buffer,
    private readonly kubeConfig?: k8s.KubeConfig,
  ) {}

  async agent(s: SandboxObject): Promise<AgentEndpoint> {
    if (!this.agentKey)
      throw notReady(s, "this gateway has no agent key (--agent-key-file) for the pod backend");
    const ip = s.status?.ip;
    if (!ip) throw notReady(s, "no pod IP yet");
    return { host: ip, port: AGENT_PORT, token: deriveAgentToken(this.agentKey, s.metadata.uid!) };
  }

  forget(): void {}

  port(s: SandboxObject, port: number) {
    const ip = s.status?.ip;
    if (!ip) throw notReady(s, "no pod IP yet");
    if (!s.spec.ports?.some((p) => p.port === port))
      throw notReady(s, `port ${port} is not declared`);
    return { host: ip, port };
  }

  async logs(s: SandboxObject, o: LogOptions): Promise<LogStreams> {
    if (!this.kubeConfig) throw notReady(s, "this gateway reads no pod logs (no kubeconfig)");
    const pod = s.status?.podName;
    if (!pod) throw notReady(s, "no Pod yet");
    try {
      return await podLogs(this.kubeConfig, { namespace: s.metadata.namespace!, name: pod }, o);
    } catch (err) {
      // Not found, not started, or the apiserver refused: the sandbox's logs are not there (yet).
      if (err instanceof SandboxError) throw notReady(s, err.message);
      throw err;
    }
  }
}

export class Directory {
  constructor(
    private readonly informer: Informer<SandboxObject>,
    private readonly reaches: { docker?: Reach; pod?: Reach },
  ) {}

  get(namespace: string, name: string): SandboxObject | undefined {
    return this.informer.get(`${namespace}/${name}`);
  }

  reach(s: SandboxObject): Reach {
    const backend = s.status?.backend ?? s.spec.backend ?? "pod";
    const r = backend === "docker" ? this.reaches.docker : this.reaches.pod;
    if (!r) throw notReady(s, `this gateway does not serve the ${backend} backend`);
    return r;
  }
}
