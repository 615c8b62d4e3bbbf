// Policy decisions: the first rule whose target and port match decides,
// otherwise defaultAction. Name rules never match an address and address rules
// never match a name; a destination given as an IP literal is judged by address
// rules only, so "allow example.com" never lets a bare IP through.
import { normalizeAddress } from "./address.js";
import type { CompiledPolicy, CompiledRule, Verdict } from "./compile.js";
import { normalizeName } from "./dns-name.js";

/** Which rule decided: its index, or "default" when none matched. */
export type RuleRef = number | "default";

export interface Decision {
  readonly verdict: Verdict;
  readonly rule: RuleRef;
}

/** Judge a destination given by name (an IP literal is handed to decideAddress). */
export function decideName(policy: CompiledPolicy, host: string, port: number): Decision {
  if (normalizeAddress(host)) return decideAddress(policy, host, port);
  const name = normalizeName(host);
  const rule = policy.rules.find((r) => portMatches(r, port) && nameMatches(r, name));
  return decisionOf(policy, rule);
}

/** Judge a destination given by address. Throws on text that is not an IP address. */
export function decideAddress(policy: CompiledPolicy, ip: string, port: number): Decision {
  if (!normalizeAddress(ip)) throw new TypeError(`not an IP address: ${JSON.stringify(ip)}`);
  const rule = firstAddressRule(policy, ip, port);
  return decisionOf(policy, rule);
}

/** The first address rule matching ip:port, if any (used for the DNS-rebinding check). */
export function firstAddressRule(
  policy: CompiledPolicy,
  ip: string,
  port: number,
): CompiledRule | undefined {
  const addr = normalizeAddress(ip);
  if (!addr) return undefined;
  return policy.rules.find(
    (r) => r.cidrs !== undefined && portMatches(r, port) && r.cidrs.has(addr.address, addr.family),
  );
}

function nameMatches(rule: CompiledRule, name: string): boolean {
  const t = rule.target;
  if (t.kind === "name") return t.name === name;
  if (t.kind === "wildcard") return name.length > t.suffix.length && name.endsWith(t.suffix);
  return false;
}

function portMatches(rule: CompiledRule, port: number): boolean {
  return rule.ports === undefined || rule.ports.has(port);
}

function decisionOf(policy: CompiledPolicy, rule: CompiledRule | undefined): Decision {
  return rule
    ? { verdict: rule.action, rule: rule.index }
    : { verdict: policy.defaultAction, rule: "default" };
}

/**
 * Whether a name may be reached on at least one port: what the DNS proxy asks,
 * since a query carries no port. Exactly "some port p has decideName(name, p)
 * allow", computed by walking the matching rules once instead of 65535 times.
 * The rule reported is the one that allows (or the deny/default that closes).
 */
export function decideNameAnyPort(policy: CompiledPolicy, host: string): Decision {
  if (normalizeAddress(host)) return { verdict: "deny", rule: "default" };
  const name = normalizeName(host);
  const decided = new Set<number>();
  let firstDeny: CompiledRule | undefined;
  for (const rule of policy.rules) {
    if (!nameMatches(rule, name)) continue;
    // A rule without ports decides every port not decided yet.
    if (!rule.ports) return { verdict: rule.action, rule: rule.index };
    if (rule.action === "allow" && [...rule.ports].some((p) => !decided.has(p))) {
      return { verdict: "allow", rule: rule.index };
    }
    if (rule.action === "deny") firstDeny ??= rule;
    for (const p of rule.ports) decided.add(p);
  }
  // Some port is always left undecided (rules list at most 32 ports each).
  if (policy.defaultAction === "allow") return { verdict: "allow", rule: "default" };
  return firstDeny ? { verdict: "deny", rule: firstDeny.index } : decisionOf(policy, undefined);
}
