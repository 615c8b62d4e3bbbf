// Compare what the kernel holds (read back with iptables-save) with what the
// lockdown meant to install. Any difference is a failure: a lockdown that is not
// exactly what was intended is not trusted to be closed.
import { JUMP } from "./restore-script.js";
import type { TableRules } from "./ruleset.js";
import { chainRules, type SavedRules } from "./save-parser.js";

/** Problems found, one sentence each; empty when the kernel matches the intent. */
export function verifyRuleset(intended: TableRules[], saved: SavedRules): string[] {
  const problems: string[] = [];
  for (const t of intended) {
    const table = saved.get(t.table);
    if (!table) {
      problems.push(`table ${t.table} is missing`);
      continue;
    }
    for (const [chain, policy] of Object.entries(t.policies)) {
      const actual = table.chains.get(chain);
      if (actual !== policy)
        problems.push(`${t.table} ${chain} policy is ${actual}, want ${policy}`);
    }
    const output = chainRules(table, "OUTPUT");
    if (output[0] !== JUMP) problems.push(`${t.table} OUTPUT does not start with "${JUMP}"`);
    const jumps = output.filter((r) => r === JUMP).length;
    if (jumps !== 1)
      problems.push(`${t.table} OUTPUT jumps to the lockdown ${jumps} times, want 1`);
    for (const [chain, want] of Object.entries(t.chains)) {
      if (!table.chains.has(chain)) {
        problems.push(`${t.table} chain ${chain} is missing`);
        continue;
      }
      const got = chainRules(table, chain);
      const n = Math.max(got.length, want.length);
      for (let i = 0; i < n; i++) {
        if (got[i] !== want[i]) {
          problems.push(
            `${t.table} ${chain} rule ${i + 1}: got ${JSON.stringify(got[i] ?? null)}, want ${JSON.stringify(want[i] ?? null)}`,
          );
        }
      }
    }
  }
  return problems;
}
