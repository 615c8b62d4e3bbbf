// The Event for a replace of an object the backend owns (a NetworkPolicy, a
// Service): it follows the sandbox's own spec change (a claim's egress policy
// arriving on a warm sandbox), or it undoes someone else's edit. Told apart by
// the generation: a spec the status has not yet observed is a change of ours.
import type { Sandbox } from "../../api/sandbox.js";

export interface ReplaceEvent {
  reason: string;
  message: string;
}

export function replaceEvent(kind: string, name: string, sandbox: Sandbox): ReplaceEvent {
  const generation = sandbox.metadata?.generation;
  const observed = sandbox.status?.observedGeneration;
  if (generation !== undefined && generation !== observed)
    return {
      reason: `${kind}Updated`,
      message: `updated ${kind} ${name} to the sandbox's spec (generation ${generation})`,
    };
  return { reason: `${kind}Restored`, message: `restored ${kind} ${name}` };
}
