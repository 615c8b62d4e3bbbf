// Parse iptables-save output into tables, chain policies and rule lines.

export interface SavedTable {
  /** Chain -> policy ("-" for user chains). */
  chains: Map<string, string>;
  /** Every "-A ..." line, in order. */
  rules: string[];
}

export type SavedRules = Map<string, SavedTable>;

export function parseSave(text: string): SavedRules {
  const tables: SavedRules = new Map();
  let current: SavedTable | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    if (line.startsWith("*")) {
      current = { chains: new Map(), rules: [] };
      tables.set(line.slice(1), current);
    } else if (line === "COMMIT") {
      current = undefined;
    } else if (current && line.startsWith(":")) {
      const [chain, policy] = line.slice(1).split(" ");
      current.chains.set(chain!, policy ?? "-");
    } else if (current && line.startsWith("-A ")) {
      current.rules.push(line);
    }
  }
  return tables;
}

/** The rules of one chain, in order. */
export function chainRules(table: SavedTable | undefined, chain: string): string[] {
  return (table?.rules ?? []).filter((r) => r.startsWith(`-A ${chain} `));
}
