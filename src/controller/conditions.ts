// metav1.Condition semantics, generic over any resource's conditions:
// lastTransitionTime moves only when status changes, so it tells how long a
// condition has held; reason and message may change without a transition.
import { rfc3339 } from "../kube/time.js";

export interface ConditionLike {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export type ConditionUpdate = Omit<ConditionLike, "lastTransitionTime">;

/** Returns a new list with `update` applied; the input is not modified. */
export function setCondition<C extends ConditionLike>(
  conditions: readonly C[] | undefined,
  update: ConditionUpdate,
  now: Date,
): C[] {
  const list = [...(conditions ?? [])];
  const i = list.findIndex((c) => c.type === update.type);
  const previous = i >= 0 ? list[i] : undefined;
  const lastTransitionTime =
    previous && previous.status === update.status ? previous.lastTransitionTime : formatTime(now);
  const next = { ...previous, ...update, lastTransitionTime } as C;
  if (next.observedGeneration === undefined) delete next.observedGeneration;
  if (i >= 0) list[i] = next;
  else list.push(next);
  return list;
}

export function findCondition<C extends ConditionLike>(
  conditions: readonly C[] | undefined,
  type: string,
): C | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isTrue(conditions: readonly ConditionLike[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === "True";
}

/** RFC 3339 at second precision, as metav1.Time serializes. */
export const formatTime = (t: Date): string => rfc3339(t);
