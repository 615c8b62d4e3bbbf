// Which iptables implementation to drive. A network namespace can be filtered
// through nf_tables (iptables-nft) or the legacy x_tables (iptables-legacy);
// rules must go where the rest of the namespace's rules are, or a later tool
// may not see them. "auto" follows the approach of Kubernetes' iptables-wrapper:
// use legacy only when legacy already holds rules and nft holds none.
import { existsSync } from "node:fs";
import { delimiter, join } from "node:path";
import { runCommand } from "./exec.js";

export type IptablesVariant = "nft" | "legacy";
export type VariantChoice = IptablesVariant | "auto";

export interface IptablesBinaries {
  /** "nft", "legacy", or "unknown" when only unsuffixed binaries exist. */
  variant: IptablesVariant | "unknown";
  restore4: string;
  save4: string;
  restore6: string;
  save6: string;
}

export function binariesFor(variant: IptablesVariant): IptablesBinaries {
  return {
    variant,
    restore4: `iptables-${variant}-restore`,
    save4: `iptables-${variant}-save`,
    restore6: `ip6tables-${variant}-restore`,
    save6: `ip6tables-${variant}-save`,
  };
}

const UNSUFFIXED: IptablesBinaries = {
  variant: "unknown",
  restore4: "iptables-restore",
  save4: "iptables-save",
  restore6: "ip6tables-restore",
  save6: "ip6tables-save",
};

export function onPath(binary: string, path = process.env.PATH ?? ""): boolean {
  return path.split(delimiter).some((dir) => dir && existsSync(join(dir, binary)));
}

export async function chooseBinaries(choice: VariantChoice): Promise<IptablesBinaries> {
  if (choice !== "auto") {
    const chosen = binariesFor(choice);
    if (!onPath(chosen.restore4)) {
      throw new Error(`${chosen.restore4} not found on PATH (iptables variant "${choice}")`);
    }
    return chosen;
  }
  const nft = onPath("iptables-nft-restore");
  const legacy = onPath("iptables-legacy-restore");
  if (nft && legacy) {
    const [nftRules, legacyRules] = await Promise.all([ruleCount("nft"), ruleCount("legacy")]);
    return binariesFor(legacyRules > 0 && nftRules === 0 ? "legacy" : "nft");
  }
  if (nft) return binariesFor("nft");
  if (legacy) return binariesFor("legacy");
  if (onPath(UNSUFFIXED.restore4)) return UNSUFFIXED;
  throw new Error("no iptables-restore found on PATH (install the iptables package)");
}

async function ruleCount(variant: IptablesVariant): Promise<number> {
  try {
    const { stdout } = await runCommand(`iptables-${variant}-save`, []);
    return stdout.split("\n").filter((l) => l.startsWith("-A ")).length;
  } catch {
    return 0; // a variant the kernel cannot run holds no rules
  }
}
