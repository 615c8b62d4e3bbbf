// The docker backend: a sandbox is a network of its own, an egress sidecar
// container holding the network namespace and its fail-closed lockdown, the
// workload container joined to that namespace, and a workspace volume. The
// Sandbox in Kubernetes stays the source of truth; everything here is found
// again by name and label after a restart, so nothing is created twice.
import { posix } from "node:path";
import type Docker from "dockerode";
import type { ContainerInspectInfo } from "dockerode";
import { ConditionReason } from "../../api/conditions.js";
import type { Sandbox } from "../../api/sandbox.js";
import { PermanentError } from "../../controller/errors.js";
import type { Logger } from "../../observability/logger.js";
import type { BackendContext, Observation, SandboxBackend } from "../backend.js";
import { AgentInjector } from "./agent.js";
import { tarOf } from "./archive.js";
import {
  daemonMessage,
  ignoreGoneOrConflict,
  isUnavailable,
  orUndefined,
  statusCode,
} from "./client.js";
import {
  DEFAULT_USER,
  type DesiredSandbox,
  type DockerSettings,
  desiredSandbox,
  POLICY_DIR,
  POLICY_FILE,
  unsupportedFields,
} from "./containers.js";
import { ImagePuller } from "./images.js";
import { DockerLabels, identityOf, ownedFilter, type SandboxIdentity } from "./names.js";
import { observeContainers } from "./observe.js";
import { waitForSidecarReady } from "./sidecar-ready.js";

export interface DockerBackendDeps {
  docker: Docker;
  settings: DockerSettings;
  /** Ask for a reconcile of a sandbox ("namespace/name"), e.g. when its image arrived. */
  enqueue(key: string): void;
  log: Logger;
  /** How long a freshly started sidecar may take to install the lockdown. */
  sidecarReadyTimeoutMs?: number;
  /** The sandbox agent executable (default: dist/agent/sandbox-agent beside the bundle). */
  agentBinary?: string;
}

const NEVER = "0001-01-01T00:00:00Z";

export class DockerBackend implements SandboxBackend {
  readonly name = "docker" as const;
  /** Kubernetes garbage collection cannot reach containers: the finalizer cleans up. */
  readonly needsFinalizer = true;
  private readonly docker: Docker;
  private readonly images: ImagePuller;
  /** Policy text last delivered to each sidecar (by container ID); a cache, re-delivered after a restart. */
  private readonly delivered = new Map<string, string>();
  /** Sidecars (ID@StartedAt) already seen ready. */
  private readonly ready = new Set<string>();
  /** The in-sandbox agent: delivered before the workload starts, started beside it. */
  private readonly agent: AgentInjector;

  constructor(private readonly deps: DockerBackendDeps) {
    this.docker = deps.docker;
    this.images = new ImagePuller(deps.docker, deps.enqueue);
    this.agent = new AgentInjector(deps.docker, deps.agentBinary);
  }

  async ensure(sandbox: Sandbox, ctx: BackendContext): Promise<Observation> {
    const unsupported = unsupportedFields(sandbox);
    if (unsupported) throw new PermanentError(ConditionReason.Unsupported, unsupported);
    try {
      return await this.converge(sandbox, ctx);
    } catch (err) {
      if (isUnavailable(err)) return unavailable(sandbox, err);
      throw err;
    }
  }

  async observe(sandbox: Sandbox): Promise<Observation | undefined> {
    const desired = desiredSandbox(sandbox, this.deps.settings);
    try {
      const sidecar = await this.inspectOwn(desired.sidecar.name, desired.id);
      const workload = await this.inspectOwn(desired.workload.name, desired.id);
      if (!sidecar && !workload) return undefined;
      return observeContainers(sandbox, {
        sidecar,
        workload,
        sidecarReady: !!sidecar && this.ready.has(readyKey(sidecar)),
      });
    } catch (err) {
      if (isUnavailable(err)) return unavailable(sandbox, err);
      throw err;
    }
  }

  async remove(sandbox: Sandbox, ctx: BackendContext): Promise<boolean> {
    const id = identityOf(sandbox);
    const byUid = ownedFilter(this.deps.settings.owner, [`${DockerLabels.sandboxUid}=${id.uid}`]);
    const containers = await this.docker.listContainers({ all: true, filters: byUid });
    // The workload first: the sidecar's lockdown fences it until it is gone.
    containers.sort((a, b) => roleOrder(a.Labels) - roleOrder(b.Labels));
    for (const c of containers) {
      await ignoreGoneOrConflict(this.docker.getContainer(c.Id).remove({ force: true, v: true }));
      this.delivered.delete(c.Id);
    }
    if (containers.length) {
      ctx.record({
        type: "Normal",
        reason: "ContainersRemoved",
        message: `removed ${containers.map((c) => c.Names[0]?.replace(/^\//, "")).join(", ")}`,
      });
    }
    const networks = await this.docker.listNetworks({ filters: byUid });
    for (const n of networks) await ignoreGoneOrConflict(this.docker.getNetwork(n.Id).remove());
    const { Volumes: volumes } = await this.docker.listVolumes({ filters: byUid });
    for (const v of volumes ?? [])
      await ignoreGoneOrConflict(this.docker.getVolume(v.Name).remove());
    return true;
  }

  private async converge(sandbox: Sandbox, ctx: BackendContext): Promise<Observation> {
    const desired = desiredSandbox(sandbox, this.deps.settings);
    const key = `${desired.id.namespace}/${desired.id.name}`;

    for (const image of [this.deps.settings.egressImage, sandbox.spec.image]) {
      const got = await this.images.ensure(image, key);
      if (got.state === "failed") {
        return {
          phase: "Pending",
          ready: false,
          reason: ConditionReason.ImagePullFailed,
          message: `image ${image} is not present and could not be pulled: ${got.message}`,
          stalled: true,
        };
      }
      if (got.state === "pulling") {
        return {
          phase: "Pending",
          ready: false,
          reason: ConditionReason.Creating,
          message: `pulling image ${image}`,
        };
      }
    }

    await this.ensureNetwork(desired);
    await ignoreGoneOrConflict(this.docker.createVolume(desired.volume));

    let sidecar = await this.inspectOwn(desired.sidecar.name, desired.id, ctx);
    let workload = await this.inspectOwn(desired.workload.name, desired.id, ctx);
    if (sidecar && hashOf(sidecar) !== desired.sidecar.Labels?.[DockerLabels.specHash]) {
      // A new sidecar is a new network namespace: the workload goes with it.
      await this.removeContainer(workload);
      await this.removeContainer(sidecar);
      ctx.record({
        type: "Normal",
        reason: "SandboxRecreated",
        message:
          "recreating the sandbox's containers: the spec changed in a way that needs a new network namespace or firewall",
      });
      sidecar = workload = undefined;
    }
    if (sidecar && !workload && sidecarDied(sidecar)) {
      // Nothing joined its namespace yet: a fresh sidecar is safe. Retried with backoff.
      await this.removeContainer(sidecar);
      throw new Error(
        `egress sidecar exited with code ${sidecar.State.ExitCode} before the workload started; recreating it`,
      );
    }
    sidecar = await this.ensureSidecar(desired, sidecar);
    const sidecarReady = await this.sidecarReady(sidecar);
    await this.deliverPolicy(desired, sidecar, ctx);

    if (workload && hashOf(workload) !== desired.workload.Labels?.[DockerLabels.specHash]) {
      await this.removeContainer(workload);
      ctx.record({
        type: "Normal",
        reason: "WorkloadRecreated",
        message: "recreating the workload container: the spec changed",
      });
      workload = undefined;
    }
    if (sidecarReady && sidecar.State.Running)
      workload = await this.ensureWorkload(desired, sandbox, workload);
    return observeContainers(sandbox, { sidecar, workload, sidecarReady });
  }

  private async ensureNetwork(desired: DesiredSandbox): Promise<void> {
    const existing = await orUndefined(this.docker.getNetwork(desired.network.Name).inspect());
    if (existing) return;
    await ignoreGoneOrConflict(this.docker.createNetwork(desired.network));
  }

  private async ensureSidecar(
    desired: DesiredSandbox,
    existing: ContainerInspectInfo | undefined,
  ): Promise<ContainerInspectInfo> {
    let id = existing?.Id;
    if (!id) {
      id = await this.create(desired.sidecar);
      // Before the first start: the lockdown reads the policy as it starts.
      await this.putPolicy(id, desired.policy);
    }
    const container = this.docker.getContainer(id);
    const state = existing?.State;
    // Started once only: a sidecar that exited had its namespace torn down, and
    // the workload (if any) is still in the old one, with the lockdown but no proxy.
    if (!state || state.StartedAt === NEVER) await ignoreAlreadyStarted(container.start());
    return container.inspect();
  }

  private async ensureWorkload(
    desired: DesiredSandbox,
    sandbox: Sandbox,
    existing: ContainerInspectInfo | undefined,
  ): Promise<ContainerInspectInfo> {
    let id = existing?.Id;
    if (!id) id = await this.create(this.agent.withToken(desired.workload));
    const container = this.docker.getContainer(id);
    if (!existing || existing.State.StartedAt === NEVER) {
      // Until the first start, on every attempt: both are idempotent, and an
      // attempt that failed half-way must not leave a container without them.
      await this.prepareWorkspace(id, sandbox);
      await this.agent.deliver(id);
      await ignoreAlreadyStarted(container.start());
    }
    const inspected = await container.inspect();
    await this.agent.ensureStarted(inspected);
    return inspected;
  }

  /** Create by deterministic name; a name already taken means another attempt got there first. */
  private async create(options: DesiredSandbox["sidecar"]): Promise<string> {
    try {
      return (await this.docker.createContainer(options)).id;
    } catch (err) {
      if (statusCode(err) !== 409) throw err;
      return (await this.docker.getContainer(options.name).inspect()).Id;
    }
  }

  /**
   * The workspace volume's mount point belongs to the workload's user, not
   * root. The archive's "./" entry is extracted into the volume itself, which
   * the Engine allows even when the root file system is read-only (an entry
   * placed in "/" is refused there).
   */
  private async prepareWorkspace(id: string, sandbox: Sandbox): Promise<void> {
    const dir = posix.normalize(sandbox.spec.workingDir ?? "/workspace");
    const uid = sandbox.spec.security?.runAsUser ?? DEFAULT_USER;
    const gid = sandbox.spec.security?.runAsGroup ?? DEFAULT_USER;
    const archive = await tarOf([{ name: "./", mode: 0o755, uid, gid }]);
    await this.docker.getContainer(id).putArchive(archive, { path: dir });
  }

  private async putPolicy(id: string, policy: string): Promise<void> {
    const archive = await tarOf([
      { name: posix.basename(POLICY_DIR), mode: 0o755, uid: 0, gid: 0 },
      {
        name: POLICY_FILE.slice(posix.dirname(POLICY_DIR).length + 1),
        content: policy,
        mode: 0o644,
        uid: 0,
        gid: 0,
      },
    ]);
    await this.docker.getContainer(id).putArchive(archive, { path: posix.dirname(POLICY_DIR) });
    this.delivered.set(id, policy);
  }

  /** Name rules changed: the running sidecar follows its policy file, the workload keeps running. */
  private async deliverPolicy(
    desired: DesiredSandbox,
    sidecar: ContainerInspectInfo,
    ctx: BackendContext,
  ): Promise<void> {
    const last = this.delivered.get(sidecar.Id);
    if (last === desired.policy || !sidecar.State.Running) return;
    await this.putPolicy(sidecar.Id, desired.policy);
    // After a controller restart the cache is empty: re-delivering the same text is harmless and silent.
    if (last !== undefined) {
      ctx.record({
        type: "Normal",
        reason: "EgressPolicyUpdated",
        message: "delivered the new egress policy to the running sidecar",
      });
    }
  }

  private async sidecarReady(sidecar: ContainerInspectInfo): Promise<boolean> {
    if (!sidecar.State.Running) return false;
    const key = readyKey(sidecar);
    if (this.ready.has(key)) return true;
    const ready = await waitForSidecarReady(
      this.docker.getContainer(sidecar.Id),
      sidecar.State.StartedAt,
      this.deps.sidecarReadyTimeoutMs ?? 20_000,
    );
    if (!ready) {
      const now = await this.docker.getContainer(sidecar.Id).inspect();
      if (now.State.Running) {
        // Alive but silent: try again with backoff rather than wait for an event that may not come.
        throw new Error(`egress sidecar ${sidecar.Name} did not become ready in time`);
      }
      return false;
    }
    this.ready.add(key);
    return true;
  }

  /** Inspect a container by name; one left by an earlier Sandbox of the same name is removed. */
  private async inspectOwn(
    name: string,
    id: SandboxIdentity,
    ctx?: BackendContext,
  ): Promise<ContainerInspectInfo | undefined> {
    const found = await orUndefined(this.docker.getContainer(name).inspect());
    if (!found) return undefined;
    if (found.Config.Labels?.[DockerLabels.sandboxUid] === id.uid) return found;
    if (ctx) {
      await this.removeContainer(found);
      ctx.record({
        type: "Normal",
        reason: "StaleContainerRemoved",
        message: `removed container ${name} left by an earlier sandbox of the same name`,
      });
    }
    return undefined;
  }

  private async removeContainer(c: ContainerInspectInfo | undefined): Promise<void> {
    if (!c) return;
    this.agent.forget(c.Id);
    await ignoreGoneOrConflict(this.docker.getContainer(c.Id).remove({ force: true, v: true }));
    this.delivered.delete(c.Id);
  }
}

function sidecarDied(c: ContainerInspectInfo): boolean {
  return !c.State.Running && c.State.StartedAt !== NEVER;
}

function hashOf(c: ContainerInspectInfo): string | undefined {
  return c.Config.Labels?.[DockerLabels.specHash];
}

function readyKey(c: ContainerInspectInfo): string {
  return `${c.Id}@${c.State.StartedAt}`;
}

function roleOrder(labels: Record<string, string> | undefined): number {
  return labels?.[DockerLabels.role] === "workload" ? 0 : 1;
}

async function ignoreAlreadyStarted(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (statusCode(err) !== 304) throw err;
  }
}

/** The daemon cannot be reached: say so on the sandbox, keep the phase it had. */
function unavailable(sandbox: Sandbox, err: unknown): Observation {
  const { phase, containerId, ip, endpoints, startedAt } = sandbox.status ?? {};
  return {
    containerId,
    ip,
    endpoints,
    startedAt,
    phase: phase === "Running" ? "Running" : "Pending",
    ready: false,
    reason: ConditionReason.BackendUnavailable,
    message: `the Docker daemon cannot be reached: ${daemonMessage(err)}`,
  };
}
