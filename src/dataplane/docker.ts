// Docker transport: the agent's port is published on the Docker host's
// loopback (like declared ports) on the sandbox's egress sidecar, which owns
// the network namespace; the credential is a label of the workload container.
// Both need the Docker API, which on this backend is what a kubeconfig is on
// the pod backend: whoever holds it owns the sandboxes anyway.
import { PassThrough, type Readable } from "node:stream";
import type Docker from "dockerode";
import type { ContainerInspectInfo } from "dockerode";
import { AGENT_PORT_KEY, AGENT_TOKEN_LABEL } from "../backends/docker/agent.js";
import { DockerLabels, Role } from "../backends/docker/names.js";
import type { AgentEndpoint } from "./client.js";
import { SandboxNotFoundError, SandboxNotReadyError } from "./errors.js";
import type { LogOptions, LogStreams } from "./logs.js";

export type { LogOptions, LogStreams };

export interface SandboxRef {
  namespace: string;
  name: string;
  /** Narrows to one incarnation of the name (a recreated Sandbox has a new UID). */
  uid?: string;
}

async function containerOf(
  docker: Docker,
  ref: SandboxRef,
  role: string,
): Promise<ContainerInspectInfo | undefined> {
  const label = [
    `${DockerLabels.namespace}=${ref.namespace}`,
    `${DockerLabels.sandbox}=${ref.name}`,
    `${DockerLabels.role}=${role}`,
    ...(ref.uid ? [`${DockerLabels.sandboxUid}=${ref.uid}`] : []),
  ];
  const found = await docker.listContainers({ all: true, filters: { label } });
  // Several incarnations (a Sandbox deleted and recreated): the newest.
  found.sort((a, b) => b.Created - a.Created);
  const first = found[0];
  return first ? docker.getContainer(first.Id).inspect() : undefined;
}

export async function dockerAgentEndpoint(docker: Docker, ref: SandboxRef): Promise<AgentEndpoint> {
  const [sidecar, workload] = await Promise.all([
    containerOf(docker, ref, Role.sidecar),
    containerOf(docker, ref, Role.workload),
  ]);
  const what = `sandbox ${ref.namespace}/${ref.name}`;
  if (!sidecar && !workload)
    throw new SandboxNotFoundError(`${what} has no containers on this Docker host`);
  if (!workload?.State.Running)
    throw new SandboxNotReadyError(`${what}: the workload container is not running`);
  const token = workload.Config.Labels?.[AGENT_TOKEN_LABEL];
  if (!token) throw new SandboxNotReadyError(`${what} was created without the sandbox agent`);
  // Published by whichever container owns the network namespace: the sidecar
  // (the backend's arrangement), else the workload itself.
  const binding = (sidecar ?? workload).NetworkSettings.Ports?.[AGENT_PORT_KEY]?.[0];
  if (!binding?.HostPort)
    throw new SandboxNotReadyError(`${what}: the agent's port is not published`);
  const host = !binding.HostIp || binding.HostIp === "0.0.0.0" ? "127.0.0.1" : binding.HostIp;
  return { host: host === "::" ? "::1" : host, port: Number(binding.HostPort), token };
}

/** The workload's output as the runtime recorded it (`docker logs`). */
export async function dockerLogs(
  docker: Docker,
  ref: SandboxRef,
  o: LogOptions = {},
): Promise<LogStreams> {
  const workload = await containerOf(docker, ref, Role.workload);
  if (!workload)
    throw new SandboxNotFoundError(
      `sandbox ${ref.namespace}/${ref.name} has no workload container`,
    );
  const since = typeof o.since === "string" ? Math.floor(Date.parse(o.since) / 1000) : o.since;
  const base = {
    stdout: true,
    stderr: true,
    timestamps: o.timestamps ?? false,
    ...(since !== undefined ? { since } : {}),
    ...(o.tail !== undefined ? { tail: o.tail } : {}),
  };
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const container = docker.getContainer(workload.Id);
  if (workload.Config.Tty) {
    // A TTY container's log is one unframed stream.
    const raw = o.follow
      ? await container.logs({ ...base, follow: true })
      : await container.logs({ ...base, follow: false });
    if (Buffer.isBuffer(raw)) stdout.end(raw);
    else (raw as Readable).pipe(stdout);
    stderr.end();
    return { stdout, stderr, close: () => stdout.destroy() };
  }
  if (!o.follow) {
    const buf = (await container.logs({ ...base, follow: false })) as Buffer;
    demuxBuffer(buf, stdout, stderr);
    return { stdout, stderr, close: () => {} };
  }
  const stream = (await container.logs({ ...base, follow: true })) as unknown as Readable;
  docker.modem.demuxStream(stream, stdout, stderr);
  stream.on("end", () => {
    stdout.end();
    stderr.end();
  });
  stream.on("error", (e) => stdout.destroy(e));
  return { stdout, stderr, close: () => stream.destroy() };
}

/** Docker's multiplexed log format: 8-byte headers (stream, 0, 0, 0, size BE32). */
function demuxBuffer(buf: Buffer, stdout: PassThrough, stderr: PassThrough): void {
  let at = 0;
  while (at + 8 <= buf.length) {
    const size = buf.readUInt32BE(at + 4);
    const chunk = buf.subarray(at + 8, at + 8 + size);
    (buf[at] === 2 ? stderr : stdout).write(chunk);
    at += 8 + size;
  }
  stdout.end();
  stderr.end();
}
