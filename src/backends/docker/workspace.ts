// The docker backend's workspace, decided purely: which volume the workload
// mounts, whether the operator makes it, how it is labelled for retention,
// and whether an existing volume may be mounted by a sandbox. The shell
// (backend.ts) inspects and creates; the rules are table-tested (workspace.test.ts).
import { ConditionReason } from "../../api/conditions.js";
import { MANAGED_BY } from "../../api/labels.js";
import type { Sandbox } from "../../api/sandbox.js";
import { workspaceMountPath } from "../../api/sandbox-spec.js";
import type { WorkspaceStatus } from "../../api/sandbox-status.js";
import type { SandboxSnapshot } from "../../api/snapshot.js";
import { type RetentionPolicy, retentionOf } from "../../api/workspace.js";
import type { Observation } from "../backend.js";
import { DockerLabels, identityOf, Role, resourceLabels, resourceName } from "./names.js";

export interface WorkspacePlan {
  /** The volume the workload mounts. */
  volume: string;
  /** Where it is mounted. */
  target: string;
  /** Create options when the operator makes the volume (absent for an existing one). */
  create?: { Name: string; Labels: Record<string, string> };
  /** Only for spec.workspace: what status.workspace says. */
  status?: WorkspaceStatus;
  /** spec.workspace.existing: the volume must pass existingWorkspaceProblem first. */
  existing?: boolean;
  /** spec.workspace.fromSnapshot: fill the new volume from this SandboxSnapshot before the workload starts. */
  fromSnapshot?: string;
}

export function workspacePlan(sandbox: Sandbox, owner: string): WorkspacePlan {
  const id = identityOf(sandbox);
  const own = resourceName(id, Role.workspace);
  const target = workspaceMountPath(sandbox.spec);
  const ws = sandbox.spec.workspace;
  if (!ws) {
    // Scratch: the working directory's volume, which goes with the workload.
    return {
      volume: own,
      target,
      create: { Name: own, Labels: resourceLabels(id, Role.workspace, owner) },
    };
  }
  const retentionPolicy = retentionOf(ws);
  if (ws.existing) {
    return {
      volume: ws.existing.name,
      target,
      existing: true,
      status: { name: ws.existing.name, retentionPolicy },
    };
  }
  return {
    volume: own,
    target,
    create: {
      Name: own,
      Labels: resourceLabels(id, Role.workspace, owner, {
        // Fixed at creation (docker labels are immutable; so is spec.workspace):
        // what the finalizer and the orphan sweep go by.
        [DockerLabels.retention]: retentionPolicy,
      }),
    },
    fromSnapshot: ws.fromSnapshot?.name,
    status: {
      name: own,
      retentionPolicy,
      ...(ws.fromSnapshot ? { fromSnapshot: ws.fromSnapshot.name } : {}),
    },
  };
}

/**
 * Why a sandbox may not mount an existing volume, or undefined when it may.
 * Only a workspace this installation made for a Sandbox of the same namespace
 * and retained: a Docker host's other volumes (another installation's, another
 * namespace's, anything made by hand) are not a namespace's to mount.
 */
export function existingWorkspaceProblem(
  name: string,
  labels: Record<string, string> | undefined | null,
  sandbox: Sandbox,
  owner: string,
): string | undefined {
  const ns = sandbox.metadata.namespace;
  if (!labels) return `volume ${name} does not exist`;
  const ours =
    labels[DockerLabels.managedBy] === MANAGED_BY &&
    labels[DockerLabels.owner] === owner &&
    labels[DockerLabels.role] === Role.workspace;
  if (!ours) return `volume ${name} is not a workspace made by this operator`;
  if (labels[DockerLabels.namespace] !== ns) {
    return `volume ${name} belongs to another namespace than ${ns}`;
  }
  if (labels[DockerLabels.retention] !== "Retain") {
    return `volume ${name} is not a retained workspace (retentionPolicy: Retain); it goes with its sandbox`;
  }
  return undefined;
}

/**
 * Whether `remove` takes a volume of this sandbox. Scratch volumes go with the
 * workload; a persistent workspace only when the Sandbox itself is deleted and
 * it was made with retention Delete. A Retain one is never removed by us.
 */
export function removesVolume(
  labels: Record<string, string> | undefined | null,
  sandboxDeleting: boolean,
): boolean {
  const retention = labels?.[DockerLabels.retention] as RetentionPolicy | undefined;
  if (retention === undefined) return true;
  return retention === "Delete" && sandboxDeleting;
}

/** Whether the orphan sweep may remove a volume whose sandbox is gone: not a retained workspace. */
export function sweepable(labels: Record<string, string> | undefined | null): boolean {
  return labels?.[DockerLabels.retention] !== "Retain";
}

/**
 * Why a snapshot cannot be restored from (yet), or undefined when it can.
 * `stalled`: only someone acting resolves it (missing, failed, another
 * backend's); a snapshot still being taken is waited for.
 */
export function snapshotProblem(
  name: string,
  snap: SandboxSnapshot | undefined,
): { message: string; stalled: boolean } | undefined {
  if (!snap) return { message: `SandboxSnapshot ${name} does not exist`, stalled: true };
  const st = snap.status;
  if (st?.phase === "Failed") {
    return {
      message: `SandboxSnapshot ${name} failed: ${st.message ?? st.reason ?? ""}`,
      stalled: true,
    };
  }
  if (st?.phase !== "Ready")
    return { message: `SandboxSnapshot ${name} is not ready yet`, stalled: false };
  if (st.backend !== "docker" || !st.handle || !st.checksum) {
    return {
      message: `SandboxSnapshot ${name} was taken on the ${st.backend ?? "unknown"} backend; the docker backend restores only its own`,
      stalled: true,
    };
  }
  return undefined;
}

/** The volume whose existence says this sandbox's workspace was restored from its snapshot. */
export function restoredMarker(
  sandbox: Sandbox,
  owner: string,
): { Name: string; Labels: Record<string, string> } {
  const id = identityOf(sandbox);
  return {
    Name: `${resourceName(id, Role.workspace)}.restored`,
    Labels: resourceLabels(id, Role.workspace, owner, { [DockerLabels.role]: "restored" }),
  };
}

/** The observation with the workspace's record and WorkspaceReady, for a sandbox with spec.workspace. */
export function withWorkspace(o: Observation, plan: WorkspacePlan): Observation {
  if (!plan.status || o.workspaceReady) return o;
  return {
    ...o,
    workspace: plan.status,
    workspaceReady: {
      ready: true,
      reason: ConditionReason.WorkspaceBound,
      message: `volume ${plan.volume} is mounted at ${plan.target}`,
    },
  };
}
