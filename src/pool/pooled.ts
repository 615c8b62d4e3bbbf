// How the pool and claim controllers read a Sandbox from the cache.
import { ConditionType } from "../api/conditions.js";
import { Labels } from "../api/labels.js";
import type { Sandbox } from "../api/sandbox.js";
import { isTrue } from "../controller/conditions.js";

const FINISHED = new Set(["Succeeded", "Failed", "Expired"]);

/** Ready, on a status that reflects the sandbox's current generation (its latest spec is applied). */
export function readyAtGeneration(s: Sandbox): boolean {
  const st = s.status;
  return (
    !!st &&
    st.phase === "Running" &&
    isTrue(st.conditions, ConditionType.Ready) &&
    // Where the backend reports it, the policy of this generation is in force
    // (the pod backend: acknowledged by the sidecar over the policy channel).
    !st.conditions?.some((c) => c.type === ConditionType.EgressReady && c.status !== "True") &&
    (st.observedGeneration ?? 0) >= (s.metadata.generation ?? 0)
  );
}

export function finishedPhase(s: Sandbox): string | undefined {
  const phase = s.status?.phase;
  return phase && FINISHED.has(phase) ? phase : undefined;
}

export const poolOf = (s: Sandbox) => s.metadata.labels?.[Labels.pool];
export const claimUidOf = (s: Sandbox) => s.metadata.labels?.[Labels.claimUid];
