// A rule's target, classified once: an exact name, a "*." wildcard, or an
// address range. Accepts exactly what the CRD's CEL rule accepts (see
// EgressTargetSchema in src/api/sandbox-spec.ts), so a policy the apiserver
// admitted always compiles and one it would refuse never does.
import { type Cidr, hostCidr, parseCidr, parseIpLiteral } from "./address.js";
import { isPolicyDnsName, normalizeName } from "./dns-name.js";

export type Target =
  /** Matches this name only. */
  | { kind: "name"; name: string }
  /**
   * "*.example.org": matches names that end in ".example.org" with at least one
   * label before it, at any depth ("a.example.org", "a.b.example.org"), but never
   * the apex "example.org" itself — write a second rule for the apex.
   */
  | { kind: "wildcard"; apex: string; suffix: string }
  /** An IP address or CIDR; matches addresses of its own family only. */
  | { kind: "address"; cidr: Cidr };

export const TARGET_REASON = 'is not a DNS name, a "*." wildcard, an IP address or a CIDR';

/** Same bound as the CRD's maxLength on target. */
export const MAX_TARGET_LENGTH = 253;

/** Classify a target, or undefined when the CRD would refuse it. */
export function parseTarget(raw: string): Target | undefined {
  if (raw.length < 1 || raw.length > MAX_TARGET_LENGTH) return undefined;
  if (raw.startsWith("*.")) {
    const apexText = raw.slice(2);
    if (!isPolicyDnsName(apexText)) return undefined;
    const apex = normalizeName(apexText);
    return { kind: "wildcard", apex, suffix: `.${apex}` };
  }
  if (raw.includes("/")) {
    const cidr = parseCidr(raw);
    return cidr && { kind: "address", cidr };
  }
  const ip = parseIpLiteral(raw);
  if (ip) return { kind: "address", cidr: hostCidr(ip.address, ip.family) };
  if (isPolicyDnsName(raw)) return { kind: "name", name: normalizeName(raw) };
  return undefined;
}
