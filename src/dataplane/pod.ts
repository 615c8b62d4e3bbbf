// Pod transport: the agent listens on the Pod's loopback, reached through the
// API server's `pods/portforward` (WebSocket, which kube-apiserver 1.30+
// serves), the way `kubectl port-forward` does: a listener on this host's
// loopback, one forwarded connection per accepted socket. The credential is
// in the sandbox's agent Secret; logs come from `pods/log`. Whoever holds
// `get secrets` and `create pods/portforward` in the namespace can use the
// sandbox; nobody else can.
import http from "node:http";
import https from "node:https";
import { createServer, type Server, type Socket } from "node:net";
import { PassThrough, Writable } from "node:stream";
import * as k8s from "@kubernetes/client-node";
import { Labels } from "../api/labels.js";
import { AgentSecretKeys, agentSecretName } from "../backends/pod/agent.js";
import { WORKLOAD_CONTAINER } from "../backends/pod/pod.js";
import type { AgentEndpoint } from "./client.js";
import type { SandboxRef } from "./docker.js";
import { SandboxError, SandboxNotFoundError, SandboxNotReadyError } from "./errors.js";
import type { LogOptions, LogStreams } from "./logs.js";
import { AGENT_PORT } from "./protocol.js";

function status(err: unknown): number | undefined {
  return err instanceof k8s.ApiException ? err.code : undefined;
}

/** The sandbox's Pod, checked to be this sandbox's (its UID) and running. */
async function runningPod(kc: k8s.KubeConfig, ref: SandboxRef): Promise<k8s.V1Pod> {
  const what = `sandbox ${ref.namespace}/${ref.name}`;
  const core = kc.makeApiClient(k8s.CoreV1Api);
  let pod: k8s.V1Pod;
  try {
    pod = await core.readNamespacedPod({ name: ref.name, namespace: ref.namespace });
  } catch (err) {
    if (status(err) === 404) throw new SandboxNotReadyError(`${what} has no Pod`);
    throw err;
  }
  if (ref.uid && pod.metadata?.labels?.[Labels.sandboxUid] !== ref.uid)
    throw new SandboxNotReadyError(`${what}: its Pod belongs to an earlier sandbox of that name`);
  const running = pod.status?.containerStatuses?.find((c) => c.name === WORKLOAD_CONTAINER)?.state
    ?.running;
  if (!running || pod.metadata?.deletionTimestamp)
    throw new SandboxNotReadyError(
      `${what}: the workload container is not running (pod phase ${pod.status?.phase ?? "unknown"})`,
    );
  return pod;
}

/** The sandbox's credential, from its agent Secret. */
async function agentToken(kc: k8s.KubeConfig, ref: SandboxRef): Promise<string> {
  const what = `sandbox ${ref.namespace}/${ref.name}`;
  const core = kc.makeApiClient(k8s.CoreV1Api);
  let secret: k8s.V1Secret;
  try {
    secret = await core.readNamespacedSecret({
      name: agentSecretName(ref.name),
      namespace: ref.namespace,
    });
  } catch (err) {
    if (status(err) === 404)
      throw new SandboxNotReadyError(`${what} has no agent credential (Secret) yet`);
    if (status(err) === 403)
      throw new SandboxError(
        `${what}: reading its agent credential (Secret ${agentSecretName(ref.name)}) was refused: using a pod-backend sandbox needs get on secrets and create on pods/portforward in ${ref.namespace}`,
      );
    throw err;
  }
  if (ref.uid && secret.metadata?.labels?.[Labels.sandboxUid] !== ref.uid)
    throw new SandboxNotReadyError(`${what}: its agent Secret belongs to an earlier sandbox`);
  const token = secret.data?.[AgentSecretKeys.token];
  if (!token) throw new SandboxNotReadyError(`${what}: its agent Secret holds no credential`);
  return Buffer.from(token, "base64").toString("utf8");
}

/**
 * A listener on 127.0.0.1 whose every connection is forwarded to a port of a
 * Pod through `pods/portforward` (one WebSocket per connection).
 */
export class PodPortForwarder {
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;
  readonly host = "127.0.0.1";
  port = 0;

  private constructor(kc: k8s.KubeConfig, namespace: string, pod: string, target: number) {
    const forward = new k8s.PortForward(kc, true);
    this.server = createServer((socket) => {
      this.sockets.add(socket);
      socket.setNoDelay(true);
      socket.on("close", () => this.sockets.delete(socket));
      socket.on("error", () => {});
      // The kubelet reports a failed dial in the Pod (nothing listens) on the
      // error channel: the connection is then of no use. (The channel opens
      // with the port number, which client-node strips, leaving an empty write.)
      const errors = new Writable({
        write(chunk: Buffer, _enc, done) {
          if (chunk.length) socket.destroy();
          done();
        },
      });
      forward.portForward(namespace, pod, [target], socket, errors, socket).then(
        (ws) => {
          if (typeof ws === "function") return;
          ws.on("close", () => socket.destroy());
          ws.on("error", () => socket.destroy());
          socket.on("close", () => ws.close());
          if (socket.destroyed) ws.close();
        },
        () => socket.destroy(),
      );
    });
  }

  static async start(
    kc: k8s.KubeConfig,
    namespace: string,
    pod: string,
    port: number,
  ): Promise<PodPortForwarder> {
    const f = new PodPortForwarder(kc, namespace, pod, port);
    await new Promise<void>((resolve, reject) => {
      f.server.once("error", reject);
      f.server.listen(0, f.host, () => resolve());
    });
    // Idle, it keeps no process alive; its connections do while they last.
    f.server.unref();
    f.port = (f.server.address() as { port: number }).port;
    return f;
  }

  close(): void {
    this.server.close();
    for (const s of this.sockets) s.destroy();
  }
}

/** Reaches a pod-backend sandbox's agent: a port-forward to its loopback port, and its credential. */
export async function podAgentEndpoint(
  kc: k8s.KubeConfig,
  ref: SandboxRef,
): Promise<{ endpoint: AgentEndpoint; forwarder: PodPortForwarder }> {
  const [pod, token] = await Promise.all([runningPod(kc, ref), agentToken(kc, ref)]);
  const forwarder = await PodPortForwarder.start(
    kc,
    ref.namespace,
    pod.metadata!.name!,
    AGENT_PORT,
  );
  return { endpoint: { host: forwarder.host, port: forwarder.port, token }, forwarder };
}

/** A declared port of the sandbox, forwarded to this host's loopback. */
export async function podPortForward(
  kc: k8s.KubeConfig,
  ref: SandboxRef,
  port: number,
): Promise<PodPortForwarder> {
  const pod = await runningPod(kc, ref);
  return PodPortForwarder.start(kc, ref.namespace, pod.metadata!.name!, port);
}

/**
 * The workload's output from `pods/log` (stdout and stderr interleaved, in
 * stdout). A request of its own rather than client-node's Log, whose follow
 * stream cannot be ended without an unhandled abort error, and which drops the
 * apiserver's reason for a refusal (and a tail of 0).
 */
export async function podLogs(
  kc: k8s.KubeConfig,
  ref: SandboxRef,
  o: LogOptions = {},
): Promise<LogStreams> {
  const what = `sandbox ${ref.namespace}/${ref.name}`;
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new SandboxError("the kubeconfig has no current cluster");
  const url = new URL(
    `${cluster.server.replace(/\/$/, "")}/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/pods/${encodeURIComponent(ref.name)}/log`,
  );
  const q = url.searchParams;
  q.set("container", WORKLOAD_CONTAINER);
  if (o.follow) q.set("follow", "true");
  if (o.timestamps) q.set("timestamps", "true");
  if (o.tail !== undefined) q.set("tailLines", String(o.tail));
  if (o.since !== undefined)
    q.set(
      "sinceTime",
      new Date(typeof o.since === "number" ? o.since * 1000 : o.since)
        .toISOString()
        .replace(/\.\d{3}Z$/, "Z"),
    );
  const options: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(options);
  const get = url.protocol === "https:" ? https.get : http.get;
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    get(url, options, resolve).on("error", reject);
  });
  if (res.statusCode !== 200) {
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    let message = Buffer.concat(chunks).toString("utf8").slice(0, 500);
    try {
      message = (JSON.parse(message) as { message?: string }).message ?? message;
    } catch {}
    if (res.statusCode === 404) throw new SandboxNotFoundError(`${what}: ${message}`);
    if (res.statusCode === 400) throw new SandboxNotReadyError(`${what}: ${message}`);
    throw new SandboxError(`${what}: reading its logs failed (HTTP ${res.statusCode}): ${message}`);
  }
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stderr.end();
  res.on("error", () => stdout.end());
  res.pipe(stdout);
  return {
    stdout,
    stderr,
    close: () => {
      res.unpipe(stdout);
      res.destroy();
      stdout.end();
    },
  };
}
