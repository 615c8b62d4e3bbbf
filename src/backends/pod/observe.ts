// Pod status -> what the reconciler needs to know. Pure: the same Pod always
// gives the same Observation.
import type { V1ContainerStatus, V1Pod } from "@kubernetes/client-node";
import { ConditionReason } from "../../api/conditions.js";
import { rfc3339 } from "../../kube/time.js";
import type { BackendEvent, Observation } from "../backend.js";
import { EGRESS_SIDECAR_CONTAINER } from "./egress.js";
import { WORKLOAD_CONTAINER } from "./pod.js";

/** Waiting reasons that do not resolve by waiting: they fail the sandbox after a grace period. */
const STALL_REASONS: Record<string, ConditionReason> = {
  ImagePullBackOff: ConditionReason.ImagePullBackOff,
  ErrImagePull: ConditionReason.ErrImagePull,
  CrashLoopBackOff: ConditionReason.CrashLoopBackOff,
  CreateContainerConfigError: ConditionReason.CreateContainerConfigError,
  InvalidImageName: ConditionReason.ErrImagePull,
};

const iso = (t: Date | string | undefined) => (t === undefined ? undefined : rfc3339(t));

export function observePod(pod: V1Pod): Observation {
  const status = pod.status ?? {};
  const base = { podName: pod.metadata?.name, ip: status.podIP || undefined };
  const workload = status.containerStatuses?.find((c) => c.name === WORKLOAD_CONTAINER);

  if (status.phase === "Succeeded" || status.phase === "Failed") {
    const terminated = workload?.state?.terminated;
    const exitCode = terminated?.exitCode;
    const oom = terminated?.reason === "OOMKilled";
    return {
      ...base,
      phase: status.phase,
      ready: false,
      reason: oom
        ? ConditionReason.OOMKilled
        : status.phase === "Succeeded"
          ? ConditionReason.Succeeded
          : ConditionReason.Failed,
      message: terminationMessage(status.phase, exitCode, terminated?.reason, status.message),
      exitCode,
      startedAt: iso(terminated?.startedAt ?? status.startTime),
      finishedAt: iso(terminated?.finishedAt),
    };
  }

  // A container stuck waiting for something only a person can fix. Not the egress
  // sidecar of a running pod: the kubelet restarts it with backoff in the same
  // pod network namespace, whose lockdown holds meanwhile; EgressReady tells it.
  const running = status.phase === "Running";
  for (const c of [...(status.initContainerStatuses ?? []), ...(status.containerStatuses ?? [])]) {
    if (running && c.name === EGRESS_SIDECAR_CONTAINER) continue;
    const waiting = c.state?.waiting;
    const reason = waiting?.reason ? STALL_REASONS[waiting.reason] : undefined;
    if (reason) {
      return {
        ...base,
        phase: "Pending",
        ready: false,
        reason,
        stalled: true,
        message: `container ${c.name}: ${waiting?.message || waiting?.reason}`,
      };
    }
  }

  const scheduled = status.conditions?.find((c) => c.type === "PodScheduled");
  if (scheduled?.status === "False" && scheduled.reason === "Unschedulable") {
    return {
      ...base,
      phase: "Pending",
      ready: false,
      reason: ConditionReason.Unschedulable,
      stalled: true,
      message: scheduled.message || "no node can run the sandbox",
    };
  }

  if (status.phase === "Running" && workload) {
    const ready = workload.ready === true;
    return {
      ...base,
      egressReady: egressReadiness(pod),
      phase: "Running",
      ready,
      reason: ready ? ConditionReason.Running : ConditionReason.Creating,
      message: ready ? "the workload is running" : notReadyMessage(workload),
      startedAt: iso(workload.state?.running?.startedAt ?? status.startTime),
    };
  }

  // One message from creation to start, whether or not the Pod is bound yet:
  // telling the two apart cost every sandbox a status write (an unschedulable
  // Pod is reported above; the Pod itself shows its node).
  return {
    ...base,
    phase: "Pending",
    ready: false,
    reason: ConditionReason.Creating,
    message: "the pod is being scheduled and started",
  };
}

/** The sidecar's readiness probe passes only while the lockdown is in place and the policy loaded. */
function egressReadiness(pod: V1Pod): Observation["egressReady"] {
  const declared = pod.spec?.initContainers?.some((c) => c.name === EGRESS_SIDECAR_CONTAINER);
  if (!declared) return undefined;
  const sidecar = egressSidecarStatus(pod);
  if (sidecar?.ready) {
    return {
      ready: true,
      reason: ConditionReason.EgressEnforced,
      message: "egress is enforced by the firewall and the sidecar",
    };
  }
  const restarts = sidecar?.restartCount ?? 0;
  const state = sidecar?.state;
  const why = state?.waiting
    ? `is restarting (${state.waiting.reason ?? "waiting"}, ${restarts} restart${restarts === 1 ? "" : "s"}${lastExit(sidecar)})`
    : state?.terminated
      ? `exited with code ${state.terminated.exitCode}${state.terminated.reason ? ` (${state.terminated.reason})` : ""}; the kubelet restarts it`
      : restarts > 0
        ? `is starting again (${restarts} restart${restarts === 1 ? "" : "s"}${lastExit(sidecar)})`
        : "is not ready";
  return {
    ready: false,
    reason: ConditionReason.EgressPending,
    message: `the egress sidecar ${why}; egress stays closed meanwhile`,
  };
}

function egressSidecarStatus(pod: V1Pod): V1ContainerStatus | undefined {
  return pod.status?.initContainerStatuses?.find((c) => c.name === EGRESS_SIDECAR_CONTAINER);
}

function lastExit(c: V1ContainerStatus | undefined): string {
  const t = c?.lastState?.terminated;
  return t ? `; last exit code ${t.exitCode}${t.reason ? ` (${t.reason})` : ""}` : "";
}

/**
 * The Event for a sidecar the kubelet restarted since `seenRestarts` (the count
 * last looked at; undefined the first time, when nothing is news). Pure.
 */
export function egressSidecarRestartEvent(
  pod: V1Pod,
  seenRestarts: number | undefined,
): BackendEvent | undefined {
  const sidecar = egressSidecarStatus(pod);
  const restarts = sidecar?.restartCount ?? 0;
  if (seenRestarts === undefined || restarts <= seenRestarts) return undefined;
  return {
    type: "Warning",
    reason: "EgressSidecarRestarted",
    message: `the egress sidecar was restarted by the kubelet (${restarts} restart${restarts === 1 ? "" : "s"}${lastExit(sidecar)}); the pod's lockdown stayed in place, egress is closed until it is ready`,
  };
}

/** How often the kubelet restarted the egress sidecar (0 when there is none). */
export function egressSidecarRestarts(pod: V1Pod): number {
  return egressSidecarStatus(pod)?.restartCount ?? 0;
}

function notReadyMessage(c: V1ContainerStatus): string {
  const waiting = c.state?.waiting;
  return waiting
    ? `container ${c.name} waiting: ${waiting.reason ?? "unknown"}`
    : `container ${c.name} is not ready`;
}

function terminationMessage(
  phase: "Succeeded" | "Failed",
  exitCode: number | undefined,
  reason: string | undefined,
  podMessage: string | undefined,
): string {
  if (exitCode === undefined) return podMessage || `the pod ${phase.toLowerCase()}`;
  const why = reason && reason !== "Completed" && reason !== "Error" ? ` (${reason})` : "";
  return `the workload exited with code ${exitCode}${why}`;
}
