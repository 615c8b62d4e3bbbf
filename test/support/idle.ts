// Idle auto-suspension as both backends' suites drive and check it.
import { expect } from "vitest";
import { ConditionReason, ConditionType } from "../../src/api/conditions.js";
import { IdleMark } from "../../src/api/idle.js";
import { idleSuspendPatch } from "../../src/idle/wake.js";
import { condition, type SandboxClient, type StoredSandbox } from "./sandboxes.js";

/** Suspended as the operator does it for idleness: its patch, pinned to the sandbox's UID. */
export async function idleSuspend(sbx: SandboxClient, name: string): Promise<void> {
  const s = await sbx.get(name);
  await sbx.mergePatch(name, idleSuspendPatch(s?.metadata.uid));
}

/** The sandbox is suspended, and for idleness (a waitFor check). */
export const suspendedForIdleness = (s: StoredSandbox) => {
  expect(s.spec.suspended).toBe(true);
  expect(s.metadata.annotations?.[IdleMark.annotation]).toBe(IdleMark.value);
  expect(s.status?.phase).toBe("Suspended");
  expect(condition(s, ConditionType.Suspended)).toMatchObject({
    status: "True",
    reason: ConditionReason.IdleTimeout,
  });
};
