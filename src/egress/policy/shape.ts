// Shape check of a `network.egress` policy read by the sidecar: the same
// acceptance as EgressPolicySchema (src/api/sandbox-spec.ts), written out by
// hand so the sidecar does not load zod and the whole Sandbox API at start-up
// (about 14 MiB of its resident memory). A property test keeps the two in
// agreement (shape.test.ts); the schema stays the source of truth.
import type { EgressPolicy, EgressRule } from "../../api/sandbox-spec.js";
import { EgressPolicyError } from "./errors.js";

/** Copies of the schema's bounds (importing them would load zod); shape.test.ts checks them. */
export const SHAPE_LIMITS = { egressRules: 512, egressRulePorts: 32, target: 253 } as const;
const EGRESS_ACTIONS = ["allow", "deny"] as const;
const LIMITS = SHAPE_LIMITS;
const MAX_TARGET = SHAPE_LIMITS.target;

export function checkPolicyShape(raw: unknown): EgressPolicy {
  if (!isObject(raw)) throw new EgressPolicyError("(policy)", "must be an object");
  const defaultAction = raw.defaultAction === undefined ? "deny" : raw.defaultAction;
  if (!isAction(defaultAction)) {
    throw new EgressPolicyError("defaultAction", 'must be "allow" or "deny"');
  }
  if (raw.rules === undefined) return { defaultAction };
  if (!Array.isArray(raw.rules)) throw new EgressPolicyError("rules", "must be a list");
  if (raw.rules.length > LIMITS.egressRules) {
    throw new EgressPolicyError("rules", `must have at most ${LIMITS.egressRules} rules`);
  }
  return { defaultAction, rules: raw.rules.map(checkRule) };
}

function checkRule(raw: unknown, i: number): EgressRule {
  const fail = (field: string, reason: string): never => {
    throw new EgressPolicyError(`rules[${i}]${field}`, reason, i);
  };
  if (!isObject(raw)) return fail("", "must be an object");
  if (!isAction(raw.action)) return fail(".action", 'must be "allow" or "deny"');
  const target = raw.target;
  if (typeof target !== "string") return fail(".target", "must be a string");
  if (target.length < 1 || target.length > MAX_TARGET) {
    return fail(".target", `must be 1 to ${MAX_TARGET} characters`);
  }
  const rule: EgressRule = { action: raw.action, target };
  if (raw.ports === undefined) return rule;
  if (!Array.isArray(raw.ports)) return fail(".ports", "must be a list");
  if (raw.ports.length > LIMITS.egressRulePorts) {
    return fail(".ports", `must have at most ${LIMITS.egressRulePorts} ports`);
  }
  raw.ports.forEach((p, j) => {
    if (!Number.isSafeInteger(p) || (p as number) < 1 || (p as number) > 65535) {
      fail(`.ports[${j}]`, "must be an integer from 1 to 65535");
    }
  });
  return { ...rule, ports: raw.ports as number[] };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isAction(v: unknown): v is EgressRule["action"] {
  return (EGRESS_ACTIONS as readonly unknown[]).includes(v);
}
