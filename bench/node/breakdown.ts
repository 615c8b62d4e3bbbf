// Where a Pod's start-up time goes, read from what the kubelet and scheduler
// wrote in its status (second resolution: enough for start-ups measured in
// seconds). Each step is the time from the previous one, so the steps of one
// Pod add up to its apply -> Ready time as the API server recorded it.
import type * as k8s from "@kubernetes/client-node";

/** The steps, in the order they happen; absent ones (bare Pods have no init) are skipped. */
export const STEPS = [
  /** Sandbox created -> its Pod created (the operator's reconcile). */
  "podCreated",
  /** -> PodScheduled. */
  "scheduled",
  /** -> the first init container (egress-init) started: sandbox, netns and CNI set up. */
  "initStarted",
  /** -> egress-init exited (the firewall installed). */
  "initFinished",
  /** -> the egress sidecar's process started. */
  "sidecarStarted",
  /** -> Initialized: the sidecar's startup probe passed. */
  "initialized",
  /** -> the workload container started. */
  "workloadStarted",
  /** -> Ready. */
  "ready",
] as const;
export type Step = (typeof STEPS)[number];

const at = (t: Date | string | undefined) => (t ? new Date(t).getTime() : undefined);

/** Absolute times (ms since epoch) of each step this Pod went through. */
export function stepTimes(
  pod: k8s.V1Pod,
  ownerCreated?: Date | string,
): Partial<Record<Step, number>> {
  const cond = (type: string) =>
    at(
      pod.status?.conditions?.find((c) => c.type === type && c.status === "True")
        ?.lastTransitionTime,
    );
  const init = (name: string) => pod.status?.initContainerStatuses?.find((s) => s.name === name);
  const initState =
    init("egress-init")?.state?.terminated ?? init("egress-init")?.lastState?.terminated;
  const sidecar = init("egress")?.state?.running;
  const workload = pod.status?.containerStatuses?.[0]?.state?.running;
  const hasInit = (pod.spec?.initContainers?.length ?? 0) > 0;
  return {
    ...(ownerCreated ? { podCreated: at(pod.metadata?.creationTimestamp) } : {}),
    scheduled: cond("PodScheduled"),
    ...(hasInit
      ? {
          initStarted: at(initState?.startedAt),
          initFinished: at(initState?.finishedAt),
          sidecarStarted: at(sidecar?.startedAt),
          initialized: cond("Initialized"),
        }
      : {}),
    workloadStarted: at(workload?.startedAt),
    ready: cond("Ready"),
  };
}

/** Per-step durations (ms), each from the step before it; the first from `start`. */
export function stepDurations(
  times: Partial<Record<Step, number>>,
  start: number,
): Partial<Record<Step, number>> {
  const out: Partial<Record<Step, number>> = {};
  let prev = start;
  for (const s of STEPS) {
    const t = times[s];
    if (t === undefined) continue;
    out[s] = t - prev;
    prev = t;
  }
  return out;
}
