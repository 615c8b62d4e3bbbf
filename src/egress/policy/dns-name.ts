// DNS names as the policy sees them. Comparison is ASCII case-insensitive (RFC
// 4343) and ignores one trailing dot, so "API.Example.com." and "api.example.com"
// are the same name. Only ASCII letters are folded: String#toLowerCase would map
// e.g. the Kelvin sign (U+212A) to "k" and let a look-alike name match a rule.

/** Same pattern as the CRD's CEL rule (RE2 and JS agree on it). */
const DNS_NAME_PATTERN =
  /^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*\.?$/;
/** A last label of digits only would make "1.2.3.999" a name; the CRD refuses it. */
const NUMERIC_LAST_LABEL = /(^|\.)[0-9]+\.?$/;

/** True when `raw` is a DNS name the CRD's CEL rule accepts as a target. */
export function isPolicyDnsName(raw: string): boolean {
  return DNS_NAME_PATTERN.test(raw) && !NUMERIC_LAST_LABEL.test(raw);
}

/** Canonical form for comparison: ASCII lower case, without one trailing dot. */
export function normalizeName(raw: string): string {
  const lower = raw.replace(/[A-Z]+/g, (s) => s.toLowerCase());
  return lower.endsWith(".") ? lower.slice(0, -1) : lower;
}
