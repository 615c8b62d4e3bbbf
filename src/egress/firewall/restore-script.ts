// Render the lockdown as one iptables-restore input, applied with --noflush.
// Each table's block commits atomically: declaring a chain creates it or
// flushes it (both iptables-nft and -legacy do so under --noflush), the old
// jumps into it are deleted and one is inserted at the top of OUTPUT, all in
// the same commit, so there is no instant with a half-written lockdown.
import { CHAIN, type TableRules } from "./ruleset.js";
import type { SavedRules } from "./save-parser.js";

export const JUMP = `-A OUTPUT -j ${CHAIN}`;

/** `existing`: what iptables-save printed before, to delete jumps left by an earlier run. */
export function renderRestore(tables: TableRules[], existing: SavedRules): string {
  const lines: string[] = [];
  for (const t of tables) {
    lines.push(`*${t.table}`);
    for (const [chain, policy] of Object.entries(t.policies))
      lines.push(`:${chain} ${policy} [0:0]`);
    for (const chain of Object.keys(t.chains)) lines.push(`:${chain} - [0:0]`);
    const staleJumps = (existing.get(t.table)?.rules ?? []).filter((r) => r === JUMP).length;
    for (let i = 0; i < staleJumps; i++) lines.push(`-D OUTPUT -j ${CHAIN}`);
    lines.push(`-I OUTPUT 1 -j ${CHAIN}`);
    for (const rules of Object.values(t.chains)) lines.push(...rules);
    lines.push("COMMIT");
  }
  return `${lines.join("\n")}\n`;
}
