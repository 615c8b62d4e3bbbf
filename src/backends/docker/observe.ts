// Inspected containers -> what the reconciler needs to know. Pure: the same
// inspections always give the same Observation.

import type { ContainerInspectInfo } from "dockerode";
import { ConditionReason } from "../../api/conditions.js";
import type { Sandbox } from "../../api/sandbox.js";
import type { Endpoint } from "../../api/sandbox-status.js";
import { rfc3339 } from "../../kube/time.js";
import type { Observation } from "../backend.js";
import type { PolicyApplied } from "./policy-applied.js";

export interface Inspected {
  sidecar?: ContainerInspectInfo;
  workload?: ContainerInspectInfo;
  /** The sidecar logged that the lockdown is installed and it serves. */
  sidecarReady: boolean;
  /** The sidecar died and its next restart is this far off (crash-loop backoff). */
  sidecarRestartInMs?: number;
  /** The workload container ran and was removed by hand; it is about to be recreated. */
  workloadRemoved?: boolean;
  /** Whether the ready sidecar has this generation's policy in force (policy-applied.ts); absent: not asked. */
  policy?: PolicyApplied;
}

/** Docker's zero time for "never happened". */
const NEVER = "0001-01-01T00:00:00Z";
const iso = (t: string | undefined) => (!t || t.startsWith("0001-") ? undefined : rfc3339(t));

export function observeContainers(sandbox: Sandbox, c: Inspected): Observation {
  const workload = c.workload;
  const base = {
    containerId: workload?.Id,
    ip: sidecarAddress(c.sidecar),
    endpoints: endpoints(sandbox, c.sidecar),
  };
  const state = workload?.State;

  // Removed by hand, not finished: the workload is recreated, as a deleted Pod is.
  const removing = isBeingRemoved(workload);
  if (state && !state.Running && !removing && state.FinishedAt && state.FinishedAt !== NEVER) {
    const exitCode = state.ExitCode;
    const oom = state.OOMKilled;
    const succeeded = exitCode === 0 && !oom;
    return {
      ...base,
      phase: succeeded ? "Succeeded" : "Failed",
      ready: false,
      reason: oom
        ? ConditionReason.OOMKilled
        : succeeded
          ? ConditionReason.Succeeded
          : ConditionReason.Failed,
      message: oom
        ? `the workload exceeded its memory limit and was killed (exit code ${exitCode})`
        : `the workload exited with code ${exitCode}${state.Error ? `: ${state.Error}` : ""}`,
      exitCode,
      startedAt: iso(state.StartedAt),
      finishedAt: iso(state.FinishedAt),
    };
  }

  const egressReady = sidecarEgress(c);
  if (!state?.Running || removing) {
    return {
      ...base,
      phase: "Pending",
      ready: false,
      reason: ConditionReason.Creating,
      message:
        removing || c.workloadRemoved
          ? "the workload container was removed; it is being recreated (the workspace volume is kept)"
          : egressReady.ready
            ? "starting the workload"
            : `waiting for the egress sidecar: ${egressReady.message}`,
      egressReady,
    };
  }
  // A HEALTHCHECK in the workload's image decides readiness when there is one.
  const health = state.Health?.Status;
  const healthy = !health || health === "healthy";
  return {
    ...base,
    phase: "Running",
    ready: healthy,
    reason: healthy ? ConditionReason.Running : ConditionReason.Creating,
    message: healthy ? "the workload is running" : `the workload's health check reports ${health}`,
    startedAt: iso(state.StartedAt),
    egressReady,
  };
}

/**
 * Whether a container is on its way out (`docker rm -f`): the daemon marks it
 * before it kills it, so its exit code is removal's, not the workload's.
 */
export function isBeingRemoved(c: ContainerInspectInfo | undefined): boolean {
  const status = c?.State.Status;
  return status === "removing" || status === "dead" || c?.State.Dead === true;
}

/**
 * Whether a running workload is in the running sidecar's network namespace.
 * Every start of the sidecar container makes a new namespace, and a workload
 * joins the one its sidecar has when the workload starts: so it is in the
 * current one exactly when it started after the sidecar's last start (the
 * workload is only ever started once its sidecar is ready).
 */
export function inSidecarNamespace(
  sidecar: ContainerInspectInfo | undefined,
  workload: ContainerInspectInfo | undefined,
): boolean {
  if (!sidecar?.State.Running || !workload?.State.Running) return false;
  return Date.parse(workload.State.StartedAt) >= Date.parse(sidecar.State.StartedAt);
}

function sidecarEgress(c: Inspected): NonNullable<Observation["egressReady"]> {
  const s = c.sidecar?.State;
  const detached = !!c.workload?.State.Running && !inSidecarNamespace(c.sidecar, c.workload);
  if (s?.Running && c.sidecarReady && !detached) {
    if (c.policy && !c.policy.applied)
      return { ready: false, reason: ConditionReason.EgressPending, message: c.policy.message };
    return {
      ready: true,
      reason: ConditionReason.EgressEnforced,
      message: c.policy?.message ?? "the lockdown is installed and the sidecar serves the policy",
    };
  }
  const restart =
    c.sidecarRestartInMs === undefined
      ? "it is being restarted"
      : `restarting it in ${Math.ceil(c.sidecarRestartInMs / 1000)}s (crash-loop backoff)`;
  const why = !c.sidecar
    ? c.workload
      ? "the sidecar container is gone; it is being recreated and the workload moved into its network namespace; egress stays closed meanwhile"
      : "the sidecar container does not exist yet"
    : !s?.Running
      ? `the sidecar is not running (exit code ${s?.ExitCode}${s?.Error ? `: ${s.Error}` : ""}); ${restart}; egress stays closed meanwhile`
      : !c.sidecarReady
        ? "the sidecar is installing the lockdown"
        : "the workload is not in the sidecar's current network namespace (the sidecar was restarted or replaced); the workload is being moved into it; egress stays closed meanwhile";
  return { ready: false, reason: ConditionReason.EgressPending, message: why };
}

function sidecarAddress(sidecar: ContainerInspectInfo | undefined): string | undefined {
  const networks = Object.values(sidecar?.NetworkSettings?.Networks ?? {});
  return networks.find((n) => n.IPAddress)?.IPAddress || undefined;
}

/** Declared ports as published on the Docker host. */
function endpoints(sandbox: Sandbox, sidecar: ContainerInspectInfo | undefined): Endpoint[] {
  const published = sidecar?.NetworkSettings?.Ports ?? {};
  const out: Endpoint[] = [];
  for (const p of sandbox.spec.ports ?? []) {
    const binding = published[`${p.port}/tcp`]?.[0];
    if (!binding?.HostPort) continue;
    const host = binding.HostIp && binding.HostIp !== "0.0.0.0" ? binding.HostIp : "127.0.0.1";
    const port = Number(binding.HostPort);
    out.push({ name: p.name, host, port, url: `http://${host}:${port}` });
  }
  return out;
}
