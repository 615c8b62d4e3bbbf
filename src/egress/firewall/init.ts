// `sandbox-operator egress-init`: install the lockdown in the current network
// namespace, read it back, and fail loudly unless the kernel holds exactly what
// was intended. Runs before the workload starts (pod: an init container with
// NET_ADMIN only; docker: the sidecar's start-up).
import { existsSync } from "node:fs";
import type { Logger } from "pino";
import { EGRESS_PORTS, EGRESS_SIDECAR_UID } from "../contract.js";
import type { CompiledPolicy } from "../policy/index.js";
import { chooseBinaries, type IptablesBinaries, type VariantChoice } from "./binaries.js";
import { runCommand } from "./exec.js";
import { renderRestore } from "./restore-script.js";
import { buildRuleset, type ListenPorts, type TableRules } from "./ruleset.js";
import { parseSave } from "./save-parser.js";
import { verifyRuleset } from "./verify.js";

/** Defaults: the egress contract (src/egress/contract.ts). */
export const DEFAULT_SIDECAR_UID = EGRESS_SIDECAR_UID;
export const DEFAULT_LISTEN_PORTS: ListenPorts = {
  dns: EGRESS_PORTS.dns,
  http: EGRESS_PORTS.http,
  tls: EGRESS_PORTS.tls,
};

export interface EgressInitOptions {
  /**
   * The sandbox's policy, validated before anything is installed (a sandbox
   * with a policy its sidecar would refuse does not start); the rules do not
   * depend on it: the sidecar judges address rules and defaultAction.
   */
  policy: CompiledPolicy;
  sidecarUid?: number;
  ports?: Partial<ListenPorts>;
  /** iptables implementation; "auto" by default. */
  variant?: VariantChoice;
  /** Explicit binaries, overriding variant (e.g. for a distribution's own names). */
  binaries?: IptablesBinaries;
  logger?: Logger;
}

export interface EgressInitResult {
  binaries: IptablesBinaries;
  /** False when the kernel has no IPv6, so there was nothing to close. */
  ipv6: boolean;
}

export class LockdownError extends Error {
  override readonly name = "LockdownError";
}

export async function runEgressInit(opts: EgressInitOptions): Promise<EgressInitResult> {
  const sidecarUid = opts.sidecarUid ?? DEFAULT_SIDECAR_UID;
  const ruleset = buildRuleset({ sidecarUid, ports: { ...DEFAULT_LISTEN_PORTS, ...opts.ports } });
  const binaries = opts.binaries ?? (await chooseBinaries(opts.variant ?? "auto"));
  const ipv6 = ipv6Available();

  await applyAndVerify("IPv4", binaries.restore4, binaries.save4, ruleset.ipv4);
  if (ipv6) await applyAndVerify("IPv6", binaries.restore6, binaries.save6, ruleset.ipv6);
  opts.logger?.info(
    { variant: binaries.variant, sidecarUid, ipv6, rules: opts.policy.rules.length },
    "egress lockdown installed and verified",
  );
  return { binaries, ipv6 };
}

async function applyAndVerify(
  family: string,
  restore: string,
  save: string,
  tables: TableRules[],
): Promise<void> {
  const before = parseSave((await runCommand(save, [])).stdout);
  const script = renderRestore(tables, before);
  try {
    await runCommand(restore, ["--noflush"], script);
  } catch (err) {
    throw new LockdownError(`${family} lockdown could not be applied: ${(err as Error).message}`);
  }
  const after = parseSave((await runCommand(save, [])).stdout);
  const problems = verifyRuleset(tables, after);
  if (problems.length > 0) {
    throw new LockdownError(
      `${family} lockdown verification failed; the firewall is not what was intended:\n  ${problems.join("\n  ")}`,
    );
  }
}

/** Without IPv6 in the kernel there is no IPv6 egress to close (and ip6tables cannot run). */
function ipv6Available(): boolean {
  return existsSync("/proc/net/if_inet6");
}
