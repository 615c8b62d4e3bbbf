// The docker backend: a sandbox is a network of its own, an egress sidecar
// container holding the network namespace and its fail-closed lockdown, the
// workload container joined to that namespace, and a workspace volume. The
// Sandbox in Kubernetes stays the source of truth; everything here is found
// again by name and label after a restart, so nothing is created twice.
//
// Every start of the sidecar container makes a new network namespace (Docker
// tears a container's namespace down when it stops), and the workload joins the
// namespace its sidecar has when the workload starts. So when the sidecar dies
// or is replaced, the workload is left in the old namespace, fenced by the old
// lockdown with no way out; it is moved into the new one (restarted, or
// recreated for a new sidecar container) once the new sidecar has installed its
// lockdown there. Egress is never open in between.

import { posix } from "node:path";
import type Docker from "dockerode";
import type { ContainerInspectInfo } from "dockerode";
import { ConditionReason, ConditionType } from "../../api/conditions.js";
import type { Sandbox } from "../../api/sandbox.js";
import type { SandboxSnapshot } from "../../api/snapshot.js";
import { sleep } from "../../controller/backoff.js";
import { isTrue } from "../../controller/conditions.js";
import { PermanentError } from "../../controller/errors.js";
import { ackAnswers, policyFileDigest } from "../../egress/policy-ack.js";
import { keyOf } from "../../kube/object-key.js";
import type { Logger } from "../../observability/logger.js";
import type { BackendContext, Observation, SandboxBackend, SuspendResult } from "../backend.js";
import { AgentInjector } from "./agent.js";
import { tarOf } from "./archive.js";
import {
  daemonMessage,
  ignoreGoneOrConflict,
  isUnavailable,
  orUndefined,
  statusCode,
} from "./client.js";
import type { ContainerObservations } from "./container-observations.js";
import {
  acknowledgesPolicy,
  DEFAULT_USER,
  type DesiredSandbox,
  type DockerSettings,
  desiredSandbox,
  type HostBind,
  POLICY_ACKS_DIR_NAME,
  unsupportedFields,
} from "./containers.js";
import { ImagePuller } from "./images.js";
import { intact } from "./intact.js";
import { DockerLabels, identityOf, ownedFilter, type SandboxIdentity } from "./names.js";
import {
  type Inspected,
  inSidecarNamespace,
  isBeingRemoved,
  observeContainers,
} from "./observe.js";
import { PolicyAcks } from "./policy-acks.js";
import { type AckMode, type PolicyApplied, policyApplied } from "./policy-applied.js";
import { PolicyDelivery } from "./policy-delivery.js";
import { resolveHostBinds } from "./resolve-host-path.js";
import { SIDECAR_SLOW_RETRY_MS, SidecarReadiness, SidecarSlowError } from "./sidecar-ready.js";
import { SidecarRestarts } from "./sidecar-restarts.js";
import { ChecksumMismatchError, DockerSnapshots } from "./snapshots.js";
import {
  existingWorkspaceProblem,
  removesVolume,
  restoredMarker,
  snapshotProblem,
  type WorkspacePlan,
  withWorkspace,
  workspacePlan,
} from "./workspace.js";

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
  /** A SandboxSnapshot from the cache, for spec.workspace.fromSnapshot. */
  snapshot?(namespace: string, name: string): SandboxSnapshot | undefined;
  /**
   * The containers' last inspects, kept current by the daemon's events stream
   * (container-observations.ts); absent: every reconcile inspects.
   */
  observations?: ContainerObservations;
}

const NEVER = "0001-01-01T00:00:00Z";
/** How long to wait for a container someone is removing (`docker rm -f`) to be gone. */
const REMOVAL_WAIT_MS = 10_000;
/** Grace for a workload restarted into its sidecar's new namespace: it had no network anyway. */
const WORKLOAD_RESTART_GRACE_S = 2;
/**
 * How long a reconcile waits for the sidecar to acknowledge a policy it just
 * wrote (woken by the acknowledgement, so a few ms as a rule). Waiting here
 * rather than returning at once spares a warm claim a status write saying
 * "not ready" and a second reconcile; past it, the watch enqueues the sandbox.
 */
export const POLICY_ACK_WAIT_MS = 1_000;
/** A sandbox left waiting for its acknowledgement is looked at again once, this soon (a lost inotify event). */
export const POLICY_ACK_RECHECK_MS = 2_000;

export class DockerBackend implements SandboxBackend {
  readonly name = "docker" as const;
  /** Kubernetes garbage collection cannot reach containers: the finalizer cleans up. */
  readonly needsFinalizer = true;
  private readonly docker: Docker;
  private readonly images: ImagePuller;
  private readonly policies: PolicyDelivery;
  private readonly readiness: SidecarReadiness;
  private readonly restarts: SidecarRestarts;
  /**
   * What the last observation of each sandbox (by UID) claimed. The status in
   * the cache can lag behind the write of that observation, so a claim is taken
   * as made if either says so: a repair starts only once neither claims egress.
   */
  private readonly reported = new Map<string, Reported>();
  /** The in-sandbox agent: delivered before the workload starts, started beside it. */
  private readonly agent: AgentInjector;
  /** Snapshot copies and restores through helper containers. */
  readonly snapshots: DockerSnapshots;
  /** The sidecars' policy acknowledgements, with a host policy directory. */
  private readonly acks?: PolicyAcks;

  constructor(private readonly deps: DockerBackendDeps) {
    this.docker = deps.docker;
    this.images = new ImagePuller(deps.docker, deps.enqueue);
    this.policies = new PolicyDelivery(deps.docker);
    this.readiness = new SidecarReadiness(deps.docker, deps.sidecarReadyTimeoutMs);
    this.restarts = new SidecarRestarts();
    this.agent = new AgentInjector(deps.docker, deps.agentBinary);
    this.snapshots = new DockerSnapshots(
      deps.docker,
      deps.settings.egressImage,
      deps.settings.owner,
    );
    const { policyDir } = deps.settings;
    if (policyDir) {
      this.acks = new PolicyAcks({
        root: posix.join(policyDir, POLICY_ACKS_DIR_NAME),
        enqueue: deps.enqueue,
        log: deps.log,
      });
    }
  }

  /** `ctx.signal` aborts when the reconcile is cancelled (leadership lost): waits end at once. */
  async ensure(sandbox: Sandbox, ctx: BackendContext): Promise<Observation> {
    const { signal } = ctx;
    const unsupported = unsupportedFields(sandbox);
    if (unsupported) throw new PermanentError(ConditionReason.Unsupported, unsupported);
    const { allowedHostPaths = [], hostPathsLocal = true } = this.deps.settings;
    // Before anything is created: a refused host path is a condition, never a mount.
    const binds = await resolveHostBinds(sandbox, allowedHostPaths, hostPathsLocal);
    try {
      const plan = workspacePlan(sandbox, this.deps.settings.owner);
      const waiting = await this.workspaceGate(sandbox, plan);
      if (waiting) return waiting;
      const observation = withWorkspace(
        await this.converge(sandbox, ctx, signal, binds, plan),
        plan,
      );
      this.reported.set(sandbox.metadata.uid!, {
        egress: observation.egressReady?.ready === true,
        ready: observation.ready && observation.egressReady?.ready !== false,
        containerId: observation.containerId,
      });
      return observation;
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
      const sidecarReady = !!sidecar && this.readiness.seen(sidecar);
      return observeContainers(sandbox, {
        sidecar,
        workload,
        sidecarReady,
        policy:
          sidecar && sidecarReady
            ? await this.policyApplied(sandbox, desired, sidecar, 0)
            : undefined,
      });
    } catch (err) {
      if (isUnavailable(err)) return unavailable(sandbox, err);
      throw err;
    }
  }

  /**
   * Suspend: the containers go (workload first, the sidecar's lockdown fences
   * it until then); the network and the workspace volume stay, so a resume
   * (ensure) starts the same sandbox on the same workspace.
   */
  async suspend(sandbox: Sandbox, ctx: BackendContext): Promise<SuspendResult> {
    await this.removeContainers(sandbox, ctx);
    return { released: true, workspace: workspacePlan(sandbox, this.deps.settings.owner).status };
  }

  async remove(sandbox: Sandbox, ctx: BackendContext): Promise<boolean> {
    const id = identityOf(sandbox);
    const byUid = ownedFilter(this.deps.settings.owner, [`${DockerLabels.sandboxUid}=${id.uid}`]);
    await this.removeContainers(sandbox, ctx);
    const networks = await this.docker.listNetworks({ filters: byUid });
    for (const n of networks) await ignoreGoneOrConflict(this.docker.getNetwork(n.Id).remove());
    const { Volumes: volumes } = await this.docker.listVolumes({ filters: byUid });
    const deleting = !!sandbox.metadata.deletionTimestamp;
    for (const v of volumes ?? []) {
      // A persistent workspace stays with the Sandbox, and a retained one for good.
      if (!removesVolume(v.Labels, deleting)) continue;
      await ignoreGoneOrConflict(this.docker.getVolume(v.Name).remove());
    }
    const { policyDir } = this.deps.settings;
    await this.policies.removeHostDir(policyDir && posix.join(policyDir, id.uid));
    await this.acks?.remove(id.uid);
    return true;
  }

  private async removeContainers(sandbox: Sandbox, ctx: BackendContext): Promise<void> {
    const { signal } = ctx;
    const id = identityOf(sandbox);
    const byUid = ownedFilter(this.deps.settings.owner, [`${DockerLabels.sandboxUid}=${id.uid}`]);
    const containers = await this.docker.listContainers({ all: true, filters: byUid });
    // The workload first: the sidecar's lockdown fences it until it is gone.
    containers.sort((a, b) => roleOrder(a.Labels) - roleOrder(b.Labels));
    for (const c of containers) {
      signal?.throwIfAborted();
      await ignoreGoneOrConflict(this.docker.getContainer(c.Id).remove({ force: true, v: true }));
      this.forget(c.Id);
    }
    this.restarts.forget(id.uid);
    this.reported.delete(id.uid);
    this.deps.observations?.forget(keyOf(sandbox));
    if (containers.length) {
      ctx.record({
        type: "Normal",
        reason: "ContainersRemoved",
        message: `removed ${containers.map((c) => c.Names[0]?.replace(/^\//, "")).join(", ")}`,
      });
    }
  }

  /**
   * What keeps the workload from starting on its workspace: an existing volume
   * it may not mount, or a snapshot that is not ready. Undefined: go ahead.
   */
  private async workspaceGate(
    sandbox: Sandbox,
    plan: WorkspacePlan,
  ): Promise<Observation | undefined> {
    const waiting = (reason: ConditionReason, message: string, stalled: boolean): Observation => ({
      phase: "Pending",
      ready: false,
      reason,
      message,
      ...(stalled ? { stalled: true, retry: true } : {}),
      workspace: plan.status,
      workspaceReady: { ready: false, reason, message },
    });
    if (plan.existing) {
      const volume = await orUndefined(this.docker.getVolume(plan.volume).inspect());
      const problem = existingWorkspaceProblem(
        plan.volume,
        volume ? (volume.Labels ?? {}) : undefined,
        sandbox,
        this.deps.settings.owner,
      );
      if (problem) return waiting(ConditionReason.WorkspaceNotFound, problem, true);
    }
    if (plan.fromSnapshot) {
      if (!this.deps.snapshot) {
        // Built without a SandboxSnapshot cache (the controller always passes one): say so, do not wait forever.
        throw new PermanentError(
          ConditionReason.Unsupported,
          "spec.workspace.fromSnapshot: this docker backend was started without a SandboxSnapshot cache",
        );
      }
      const snap = this.deps.snapshot(sandbox.metadata.namespace!, plan.fromSnapshot);
      const problem = snapshotProblem(plan.fromSnapshot, snap);
      if (problem)
        return waiting(ConditionReason.SnapshotNotReady, problem.message, problem.stalled);
    }
    return undefined;
  }

  private async converge(
    sandbox: Sandbox,
    ctx: BackendContext,
    signal: AbortSignal | undefined,
    binds: HostBind[],
    plan: WorkspacePlan,
  ): Promise<Observation> {
    const desired = desiredSandbox(sandbox, this.deps.settings, binds);
    const key = keyOf(sandbox);
    this.acks?.track(desired.id.uid, key);

    // All at once: on a warm sandbox these two reads are most of the reconcile,
    // and a host policy file does not depend on what they find (a sidecar reads
    // it whenever it starts, and follows it while it runs): a claim's policy is
    // written while the containers are read, not after.
    const hostPolicy = desired.policyHostDir
      ? this.policies.writeHost(desired.policyHostDir, desired.policy)
      : undefined;
    const readStart = performance.now();
    const { observations } = this.deps;
    const mark = observations?.mark() ?? 0;
    const kept = observations?.get(key, desired.id.uid);
    let [sidecar, workload] = kept
      ? [kept.sidecar, kept.workload]
      : await Promise.all([
          this.inspectOwn(desired.sidecar.name, desired.id, ctx, signal),
          this.inspectOwn(desired.workload.name, desired.id, ctx, signal),
        ]);
    // The daemon's share of a warm reconcile (bench/pools --log): reads queue behind its other work.
    if (this.deps.log.isLevelEnabled("debug"))
      this.deps.log.debug(
        { sandbox: key, ms: Math.round(performance.now() - readStart), kept: !!kept },
        "containers read",
      );
    const wroteHostPolicy = await hostPolicy;
    if (wroteHostPolicy) this.deps.log.debug({ sandbox: key }, "egress policy delivered");
    // Images and the network matter only to containers yet to be made.
    const wantHashes = {
      sidecar: desired.sidecar.Labels?.[DockerLabels.specHash],
      workload: desired.workload.Labels?.[DockerLabels.specHash],
    };
    if (!intact(sidecar, workload, wantHashes)) {
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
      signal?.throwIfAborted();
      await this.ensureNetwork(desired);
      // Only a workload yet to be made mounts it: an intact one already does.
      if (plan.create) await ignoreGoneOrConflict(this.docker.createVolume(plan.create));
    }
    // It ran before and is gone: removed by hand. Drift, repaired as a deleted Pod is.
    const reported = this.reported.get(desired.id.uid);
    const workloadRemoved =
      !workload && !!(reported ? reported.containerId : sandbox.status?.containerId);
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
    // A workload that finished is the sandbox's result: nothing is restarted for it.
    const finished = !!workload && hasFinished(workload);
    // Repairs take seconds. The status says what is broken before they start (the
    // write brings the sandbox back here), never Ready or EgressReady meanwhile.
    const conditions = sandbox.status?.conditions;
    const egressShown = isTrue(conditions, ConditionType.EgressReady) || !!reported?.egress;
    const readyShown = isTrue(conditions, ConditionType.Ready) || !!reported?.ready;
    const tellFirst = (extra: Partial<Inspected> = {}) =>
      observeContainers(sandbox, { sidecar, workload, sidecarReady: false, ...extra });

    if (sidecar && sidecarDied(sidecar) && !finished) {
      const plan = this.restarts.plan(desired.id.uid, sidecar);
      if (plan.waitMs > 0) {
        setTimeout(() => this.deps.enqueue(key), plan.waitMs).unref();
        return tellFirst({ sidecarRestartInMs: plan.waitMs });
      }
      if (egressShown) return tellFirst();
      sidecar = await this.restartSidecar(desired, sidecar, plan.attempt, ctx);
    } else if (!sidecar && workload && !finished) {
      if (egressShown) return tellFirst();
      ctx.record({
        type: "Warning",
        reason: "EgressSidecarRecreated",
        message:
          "the egress sidecar container was removed; recreating it, then the workload in its network namespace (egress stays closed meanwhile)",
      });
    }
    sidecar = await this.ensureSidecar(desired, sidecar);
    let sidecarReady: boolean;
    try {
      sidecarReady = await this.readiness.wait(sidecar, signal);
    } catch (err) {
      if (!(err instanceof SidecarSlowError)) throw err;
      // Slow under load, not failed: looked at again in a second (bounded), the
      // status saying egress is not ready yet; not an error with growing backoff.
      setTimeout(() => this.deps.enqueue(key), SIDECAR_SLOW_RETRY_MS).unref();
      this.deps.log.info({ sandbox: key }, err.message);
      return tellFirst();
    }
    signal?.throwIfAborted();
    if (await this.policies.deliver(sidecar, desired.policyHostDir, desired.policy, ctx))
      if (!desired.policyHostDir) this.deps.log.debug({ sandbox: key }, "egress policy delivered");
    const policy =
      sidecarReady && sidecar.State.Running
        ? await this.policyApplied(sandbox, desired, sidecar, POLICY_ACK_WAIT_MS, signal)
        : undefined;
    signal?.throwIfAborted();

    if (workload && hashOf(workload) !== desired.workload.Labels?.[DockerLabels.specHash]) {
      await this.removeContainer(workload);
      ctx.record({
        type: "Normal",
        reason: "WorkloadRecreated",
        message: "recreating the workload container: the spec changed",
      });
      workload = undefined;
    }
    if (sidecarReady && sidecar.State.Running && !finished) {
      if (workload?.State.Running && !inSidecarNamespace(sidecar, workload)) {
        if (egressShown)
          return observeContainers(sandbox, { sidecar, workload, sidecarReady, policy });
        workload = await this.rejoin(sidecar, workload, ctx);
      }
      // Once, as it is found; the status says Pending before the new one is made.
      if (workloadRemoved) {
        ctx.record({
          type: "Warning",
          reason: "WorkloadRecreated",
          message:
            "the workload container was removed; recreating it (the workspace volume is kept)",
        });
        if (readyShown)
          return observeContainers(sandbox, { sidecar, sidecarReady, workloadRemoved, policy });
      }
      workload = await this.ensureWorkload(desired, sandbox, workload);
    }
    // Both as they are now (read, or returned by what was just done to them):
    // the next reconcile starts from them unless an event says otherwise.
    if (sidecarReady && sidecar && workload)
      observations?.keep(key, desired.id.uid, mark, { sidecar, workload });
    return observeContainers(sandbox, { sidecar, workload, sidecarReady, policy });
  }

  /**
   * Whether the running, ready sidecar has the policy of this generation in
   * force (policy-applied.ts). `waitMs` > 0: the acknowledgement is waited for
   * that long (woken by it, not polled), and a sandbox still waiting is left
   * to the watch, with a recheck should its event be lost.
   */
  private async policyApplied(
    sandbox: Sandbox,
    desired: DesiredSandbox,
    sidecar: ContainerInspectInfo,
    waitMs: number,
    signal?: AbortSignal,
  ): Promise<PolicyApplied> {
    const generation = sandbox.metadata.generation ?? 0;
    const want = policyFileDigest(desired.policy);
    const mode: AckMode =
      !this.acks || !desired.policyAckHostFile
        ? "remote"
        : acknowledgesPolicy(sidecar.Config.Cmd)
          ? "acknowledged"
          : "legacy";
    if (mode !== "acknowledged" || !this.acks) return policyApplied({ mode, want, generation });
    const uid = desired.id.uid;
    if (waitMs <= 0) {
      return policyApplied({ mode, want, generation, record: await this.acks.read(uid) });
    }
    const waitStart = performance.now();
    let record = await this.acks.waitFor(uid, want, waitMs, signal);
    if (ackAnswers(record, want)) {
      this.acks.settle(uid);
      // The sidecar's share of a warm claim (bench/pools/trace.ts): reload and acknowledgement.
      if (this.deps.log.isLevelEnabled("debug"))
        this.deps.log.debug(
          { sandbox: keyOf(sandbox), ms: Math.round(performance.now() - waitStart) },
          "egress policy acknowledged",
        );
      return policyApplied({ mode, want, generation, record });
    }
    // Left to the watch first, then read once more: a write in between is not missed.
    const again = this.acks.leavePending(uid, want);
    record = await this.acks.read(uid);
    if (ackAnswers(record, want)) this.acks.settle(uid);
    // One recheck per policy, should the watch's event be lost; then the watch alone
    // (a sidecar that never answers is not reconciled every few seconds forever),
    // unless there is no watch.
    else if (!again || !this.acks.watching())
      setTimeout(() => this.deps.enqueue(keyOf(sandbox)), POLICY_ACK_RECHECK_MS).unref();
    this.deps.log.info(
      { sandbox: keyOf(sandbox), generation, waitedMs: waitMs },
      "the egress sidecar has not acknowledged the policy yet",
    );
    return policyApplied({ mode, want, generation, record, waitedMs: waitMs });
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
      // A bind-mounted policy directory must exist before the container that mounts it.
      if (desired.policyHostDir) await this.policies.prepare(desired.policyHostDir, desired.policy);
      // So must the acknowledgement file; emptied, so no earlier sidecar's record stands for this one's.
      if (desired.policyAckHostFile) await this.acks?.prepare(desired.id.uid, true);
      id = await this.create(desired.sidecar);
      // Before the first start: the lockdown reads the policy as it starts.
      await this.policies.put({ id, hostDir: desired.policyHostDir }, desired.policy);
    }
    // Only a container never started is started here: a dead one goes through restartSidecar.
    if (existing && existing.State.StartedAt !== NEVER) return existing; // nothing done: as read
    if (existing) await this.prepareAck(desired, existing);
    const container = this.docker.getContainer(id);
    await ignoreAlreadyStarted(container.start());
    return container.inspect();
  }

  /**
   * Starts a dead sidecar again. The start makes a new network namespace, and the
   * sidecar installs its lockdown there before anything else joins it; the
   * workload still sits in the old one (locked down, no interface left) until
   * it is restarted into the new one.
   */
  private async restartSidecar(
    desired: DesiredSandbox,
    sidecar: ContainerInspectInfo,
    attempt: number,
    ctx: BackendContext,
  ): Promise<ContainerInspectInfo> {
    const { ExitCode, OOMKilled, Error: error } = sidecar.State;
    this.restarts.note(desired.id.uid, attempt);
    ctx.record({
      type: "Warning",
      reason: "EgressSidecarRestarted",
      message: `the egress sidecar exited with code ${ExitCode}${OOMKilled ? " (out of memory)" : ""}${error ? `: ${error}` : ""}; restarting it (restart ${attempt}); egress stays closed until it is ready`,
    });
    // The lockdown reads the policy as it starts: the latest, should it have changed meanwhile.
    await this.policies.put({ id: sidecar.Id, hostDir: desired.policyHostDir }, desired.policy);
    await this.prepareAck(desired, sidecar);
    const container = this.docker.getContainer(sidecar.Id);
    await ignoreAlreadyStarted(container.start());
    return container.inspect();
  }

  /**
   * A sidecar about to start mounts its acknowledgement file, which must exist
   * (a host's /run is emptied by a reboot). Its content stays: the sidecar
   * rewrites it before it says it is ready.
   */
  private async prepareAck(desired: DesiredSandbox, sidecar: ContainerInspectInfo): Promise<void> {
    if (desired.policyAckHostFile && acknowledgesPolicy(sidecar.Config.Cmd))
      await this.acks?.prepare(desired.id.uid, false);
  }

  /**
   * Moves a running workload into its sidecar's current network namespace. The
   * daemon pins the namespace's container by ID when the workload is created:
   * the same sidecar container restarted takes a workload restart (filesystem
   * kept); a new sidecar container takes a new workload (the workspace is kept).
   */
  private async rejoin(
    sidecar: ContainerInspectInfo,
    workload: ContainerInspectInfo,
    ctx: BackendContext,
  ): Promise<ContainerInspectInfo | undefined> {
    if (workload.HostConfig.NetworkMode === `container:${sidecar.Id}`) {
      ctx.record({
        type: "Normal",
        reason: "WorkloadRestarted",
        message:
          "restarted the workload into the restarted egress sidecar's new network namespace (its filesystem and workspace are kept)",
      });
      // One daemon call: a controller that dies half-way does not leave a stopped workload behind.
      await this.docker.getContainer(workload.Id).restart({ t: WORKLOAD_RESTART_GRACE_S });
      return await this.docker.getContainer(workload.Id).inspect();
    }
    ctx.record({
      type: "Normal",
      reason: "WorkloadRecreated",
      message:
        "recreating the workload in the new egress sidecar's network namespace (the workspace volume is kept)",
    });
    await this.removeContainer(workload);
    return undefined;
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
      await this.prepareWorkspace(id, sandbox, desired.workspace.target);
      await this.restoreWorkspace(id, sandbox, desired.workspace);
      await this.agent.deliver(id);
      await ignoreAlreadyStarted(container.start());
    }
    // Untouched here: the state just read is current (another read costs a round trip).
    const inspected =
      existing && existing.State.StartedAt !== NEVER ? existing : await container.inspect();
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
  private async prepareWorkspace(id: string, sandbox: Sandbox, target: string): Promise<void> {
    const dir = posix.normalize(target);
    const uid = sandbox.spec.security?.runAsUser ?? DEFAULT_USER;
    const gid = sandbox.spec.security?.runAsGroup ?? DEFAULT_USER;
    const archive = await tarOf([{ name: "./", mode: 0o755, uid, gid }]);
    await this.docker.getContainer(id).putArchive(archive, { path: dir });
  }

  /**
   * Fill a workspace made from a snapshot, once: before the workload's first
   * start, unless a marker volume says an earlier attempt finished (a resume
   * creates a new container but must not restore over the user's work). An
   * attempt cut short is simply made again: the workload has not run, and the
   * extraction overwrites what the last one left. A digest that differs from
   * the one recorded fails the sandbox rather than start it on altered data.
   */
  private async restoreWorkspace(id: string, sandbox: Sandbox, plan: WorkspacePlan): Promise<void> {
    if (!plan.fromSnapshot) return;
    const marker = restoredMarker(sandbox, this.deps.settings.owner);
    if (await orUndefined(this.docker.getVolume(marker.Name).inspect())) return;
    const snap = this.deps.snapshot?.(sandbox.metadata.namespace!, plan.fromSnapshot);
    const problem = snapshotProblem(plan.fromSnapshot, snap);
    if (problem) throw new Error(problem.message); // retried: the gate will say why
    const { handle, checksum } = snap!.status as { handle: string; checksum: string };
    try {
      await this.snapshots.restore(handle, checksum, id, plan.target);
    } catch (err) {
      if (err instanceof ChecksumMismatchError) {
        throw new PermanentError(
          ConditionReason.SnapshotNotReady,
          `restoring snapshot ${plan.fromSnapshot}: ${err.message}`,
        );
      }
      throw err;
    }
    await ignoreGoneOrConflict(this.docker.createVolume(marker));
  }

  /**
   * Inspect a container by name; one left by an earlier Sandbox of the same name
   * is removed, and one someone is removing is waited out (it is then absent).
   */
  private async inspectOwn(
    name: string,
    id: SandboxIdentity,
    ctx?: BackendContext,
    signal?: AbortSignal,
  ): Promise<ContainerInspectInfo | undefined> {
    let found = await orUndefined(this.docker.getContainer(name).inspect());
    if (found && ctx && isBeingRemoved(found)) found = await this.waitRemoved(name, signal);
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

  /** Polls until a container being removed is gone; throws (retried with backoff) if it lingers. */
  private async waitRemoved(
    name: string,
    signal?: AbortSignal,
  ): Promise<ContainerInspectInfo | undefined> {
    const deadline = Date.now() + REMOVAL_WAIT_MS;
    for (;;) {
      signal?.throwIfAborted();
      const found = await orUndefined(this.docker.getContainer(name).inspect());
      if (!found) return undefined;
      if (!isBeingRemoved(found)) return found; // a new one by that name meanwhile
      if (Date.now() > deadline) throw new Error(`container ${name} is still being removed`);
      await sleep(100, signal);
    }
  }

  private async removeContainer(c: ContainerInspectInfo | undefined): Promise<void> {
    if (!c) return;
    await ignoreGoneOrConflict(this.docker.getContainer(c.Id).remove({ force: true, v: true }));
    this.forget(c.Id);
  }

  private forget(containerId: string): void {
    this.policies.forget(containerId);
    this.readiness.forget(containerId);
    this.agent.forget(containerId);
  }
}

interface Reported {
  egress: boolean;
  ready: boolean;
  containerId?: string;
}

/** Ran, and is not running now (it exited or was killed). */
function sidecarDied(c: ContainerInspectInfo): boolean {
  return !c.State.Running && !c.State.Restarting && c.State.StartedAt !== NEVER;
}

/** The workload exited on its own (not being removed): its exit is the sandbox's result. */
function hasFinished(c: ContainerInspectInfo): boolean {
  return !c.State.Running && c.State.FinishedAt !== NEVER && !isBeingRemoved(c);
}

function hashOf(c: ContainerInspectInfo): string | undefined {
  return c.Config.Labels?.[DockerLabels.specHash];
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
