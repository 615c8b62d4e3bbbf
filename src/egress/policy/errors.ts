// A policy the sidecar or the lockdown cannot enforce is refused as a whole,
// naming the offending field the way the apiserver does (`rules[3].target`), so
// the controller can turn it into a condition a person can act on.
export class EgressPolicyError extends Error {
  override readonly name = "EgressPolicyError";

  constructor(
    /** Field path relative to `network.egress`, e.g. "rules[3].target". */
    readonly field: string,
    /** Why the value was refused, without the field name. */
    readonly reason: string,
    /** Index of the offending rule, when the problem is in one rule. */
    readonly ruleIndex?: number,
  ) {
    super(`${field}: ${reason}`);
  }
}
