// The fail-closed lockdown: iptables/ip6tables rules that send the workload's
// traffic through the sidecar or nowhere. Rule generation is pure (ruleset.ts);
// init.ts applies and verifies it.
export {
  binariesFor,
  chooseBinaries,
  type IptablesBinaries,
  type IptablesVariant,
  type VariantChoice,
} from "./binaries.js";
export {
  DEFAULT_LISTEN_PORTS,
  DEFAULT_SIDECAR_UID,
  type EgressInitOptions,
  type EgressInitResult,
  LockdownError,
  runEgressInit,
} from "./init.js";
export { JUMP, renderRestore } from "./restore-script.js";
export {
  buildRuleset,
  CHAIN,
  type ListenPorts,
  type LockdownConfig,
  type Ruleset,
  type TableRules,
} from "./ruleset.js";
export { parseSave, type SavedRules } from "./save-parser.js";
export { verifyRuleset } from "./verify.js";
