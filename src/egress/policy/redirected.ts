// The judgement of a TCP connection the lockdown redirected to the sidecar, by
// its original destination (what the workload dialed; the sidecar reads it
// with SO_ORIGINAL_DST). The firewall holds no policy, so this is where address
// rules and defaultAction act on direct traffic, from the policy the sidecar
// follows live:
//
// - Port 80/443: an address rule allowing the address and port means "reach
//   this address directly" (route "direct"); otherwise the connection is judged
//   by its Host / TLS SNI name (route "name"), and the sidecar connects to the
//   address it resolves for that name, never the one dialed.
// - Any other port: an address rule matching decides; otherwise a reserved
//   address is refused, and any other follows defaultAction (judgeDestination
//   for an IP literal).
import type { CidrSet } from "./address.js";
import type { CompiledPolicy } from "./compile.js";
import { firstAddressRule, type RuleRef } from "./decide.js";
import { judgeDestination } from "./destination.js";

/** Ports whose redirected connections are judged by the name they carry. */
export const NAME_JUDGED_PORTS: readonly number[] = [80, 443];

export type RedirectedRoute = "direct" | "refuse" | "name";

export interface RedirectedDecision {
  readonly route: RedirectedRoute;
  /** The rule that decided; null when the name inside the connection decides. */
  readonly rule: RuleRef | "reserved-address" | null;
}

export function judgeRedirected(
  policy: CompiledPolicy,
  reserved: CidrSet,
  dest: { readonly address: string; readonly port: number },
): RedirectedDecision {
  if (NAME_JUDGED_PORTS.includes(dest.port)) {
    const rule = firstAddressRule(policy, dest.address, dest.port);
    if (rule?.action === "allow") return { route: "direct", rule: rule.index };
    return { route: "name", rule: null };
  }
  const d = judgeDestination(policy, reserved, dest);
  return { route: d.verdict === "allow" ? "direct" : "refuse", rule: d.rule };
}
