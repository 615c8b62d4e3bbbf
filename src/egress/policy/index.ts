// The egress policy: parse a `network.egress` policy once, then judge names and
// addresses against it. Pure; shared by the sidecar and the lockdown.
export {
  type Cidr,
  CidrSet,
  formatCidr,
  type IpFamily,
  normalizeAddress,
  parseCidr,
  parseIpLiteral,
} from "./address.js";
export {
  type CompiledPolicy,
  type CompiledRule,
  compilePolicy,
  DENY_ALL,
  parsePolicy,
  type Verdict,
} from "./compile.js";
export {
  type Decision,
  decideAddress,
  decideName,
  decideNameAnyPort,
  type RuleRef,
} from "./decide.js";
export {
  type Destination,
  type DestinationDecision,
  judgeDestination,
} from "./destination.js";
export { isPolicyDnsName, normalizeName } from "./dns-name.js";
export { EgressPolicyError } from "./errors.js";
export { policyFromText } from "./from-text.js";
export {
  judgeRedirected,
  NAME_JUDGED_PORTS,
  type RedirectedDecision,
  type RedirectedRoute,
} from "./redirected.js";
export { DEFAULT_RESERVED_RANGES, reservedRanges } from "./reserved-ranges.js";
export { parseTarget, type Target } from "./target.js";
