// Turn a `network.egress` policy into the form the matchers use. The zod schema
// checks shapes and ranges; the target syntax and port uniqueness are CEL-only in
// the CRD, so they are checked again here: the sidecar must never guess what an
// unparseable rule meant.

import type { EgressPolicy, EgressRule } from "../../api/sandbox-spec.js";
import { CidrSet } from "./address.js";
import { EgressPolicyError } from "./errors.js";
import { checkPolicyShape } from "./shape.js";
import { parseTarget, TARGET_REASON, type Target } from "./target.js";

export type Verdict = EgressRule["action"];

export interface CompiledRule {
  /** Position in `rules`, reported in every decision. */
  readonly index: number;
  readonly action: Verdict;
  readonly target: Target;
  /** Undefined: every port (the rule had no ports, or an empty list). */
  readonly ports?: ReadonlySet<number>;
  /** Single-member set for address targets, so membership uses BlockList. */
  readonly cidrs?: CidrSet;
}

export interface CompiledPolicy {
  readonly defaultAction: Verdict;
  readonly rules: readonly CompiledRule[];
}

/** Compile an already-shaped policy; throws EgressPolicyError naming `rules[i].<field>`. */
export function compilePolicy(policy: EgressPolicy): CompiledPolicy {
  const rules = (policy.rules ?? []).map((rule, index) => compileRule(rule, index));
  return { defaultAction: policy.defaultAction, rules };
}

/** Validate untrusted input (a mounted file, a spec), then compile it. */
export function parsePolicy(raw: unknown): CompiledPolicy {
  return compilePolicy(checkPolicyShape(raw));
}

/** A policy that refuses everything: what the sidecar enforces when it has no valid policy. */
export const DENY_ALL: CompiledPolicy = { defaultAction: "deny", rules: [] };

function compileRule(rule: EgressRule, index: number): CompiledRule {
  const target = parseTarget(rule.target);
  if (!target) {
    throw new EgressPolicyError(
      `rules[${index}].target`,
      `${JSON.stringify(rule.target)} ${TARGET_REASON}`,
      index,
    );
  }
  const ports = rule.ports ?? [];
  ports.forEach((port, j) => {
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new EgressPolicyError(`rules[${index}].ports[${j}]`, `${port} is not a port`, index);
    }
    if (ports.indexOf(port) !== j) {
      throw new EgressPolicyError(`rules[${index}].ports[${j}]`, `duplicate port ${port}`, index);
    }
  });
  return {
    index,
    action: rule.action,
    target,
    ...(ports.length > 0 ? { ports: new Set(ports) } : {}),
    ...(target.kind === "address" ? { cidrs: new CidrSet([target.cidr]) } : {}),
  };
}
