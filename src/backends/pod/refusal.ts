// A create the apiserver refuses, seen as an observation: the sandbox cannot
// progress until someone acts (a quota freed, a LimitRange or RuntimeClass
// fixed, a name freed), so it is Stalled with the apiserver's own words, and
// retried with backoff meanwhile (see decide.ts).
import { ConditionReason } from "../../api/conditions.js";
import type { Sandbox } from "../../api/sandbox.js";
import { apiStatus, errorMessage } from "../../controller/errors.js";
import type { Observation } from "../backend.js";

/** An object of our name exists and belongs to no Sandbox: someone else's, never overwritten. */
export class NameTakenError extends Error {
  override name = "NameTakenError";
  constructor(kind: string, objectName: string) {
    super(`a ${kind} named ${objectName} already exists and is not owned by this sandbox`);
  }
}

/** The observation a refusal amounts to, or undefined when `err` is no refusal. */
export function refusedObservation(sandbox: Sandbox, err: unknown): Observation | undefined {
  const base = { phase: "Pending", ready: false, stalled: true, retry: true } as const;
  if (err instanceof NameTakenError) {
    return { ...base, reason: ConditionReason.NameTaken, message: err.message };
  }
  // 403 Forbidden: admission said no (ResourceQuota, LimitRanger, RuntimeClass,
  // PodSecurity) or RBAC did; either way a person must act, and the message says what.
  if (apiStatus(err) !== 403) return undefined;
  const message = errorMessage(err);
  return { ...base, reason: refusalReason(sandbox, message), message };
}

function refusalReason(sandbox: Sandbox, message: string): ConditionReason {
  // The RuntimeClass admission plugin's words for a class that does not exist
  // ("pod rejected: RuntimeClass "gvisor" not found"): a missing reference.
  const runtimeClass = sandbox.spec.security.runtimeClassName;
  if (runtimeClass && message.includes(`RuntimeClass "${runtimeClass}" not found`)) {
    return ConditionReason.MissingReference;
  }
  return ConditionReason.Rejected;
}
