// The full judgement of one connection the sidecar is about to make: the name
// (if any) must be allowed, and the address it will really connect to must pass
// too. An address rule that matches the address decides for it (so
// "deny 203.0.113.0/24" holds even for an allowed name resolving there);
// otherwise a reserved address is refused, and any other address follows the
// name's verdict (or defaultAction for an IP literal).
import { type CidrSet, normalizeAddress } from "./address.js";
import type { CompiledPolicy, Verdict } from "./compile.js";
import { decideName, firstAddressRule, type RuleRef } from "./decide.js";

export interface Destination {
  /** The name asked for (Host, SNI, CONNECT authority), if it was a name. */
  readonly name?: string;
  /** The address the connection would go to. */
  readonly address: string;
  readonly port: number;
}

export interface DestinationDecision {
  readonly verdict: Verdict;
  /** "reserved-address": refused because the address is reserved and no rule allows it. */
  readonly rule: RuleRef | "reserved-address";
}

export function judgeDestination(
  policy: CompiledPolicy,
  reserved: CidrSet,
  dest: Destination,
): DestinationDecision {
  if (dest.name !== undefined) {
    const byName = decideName(policy, dest.name, dest.port);
    if (byName.verdict === "deny") return byName;
  }
  const addressRule = firstAddressRule(policy, dest.address, dest.port);
  if (addressRule) return { verdict: addressRule.action, rule: addressRule.index };
  const addr = normalizeAddress(dest.address);
  if (!addr || reserved.has(addr.address, addr.family)) {
    return { verdict: "deny", rule: "reserved-address" };
  }
  if (dest.name !== undefined) return decideName(policy, dest.name, dest.port);
  return { verdict: policy.defaultAction, rule: "default" };
}
