import { describe, expect, it } from "vitest";
import { CONDITIONS, ConditionReason, ConditionType } from "./conditions.js";
import {
  renderConditionsTable,
  TABLE_BEGIN,
  TABLE_END,
  withConditionsTable,
} from "./conditions-table.js";

describe("conditions table", () => {
  it("documents every condition type and every reason", () => {
    expect(CONDITIONS.map((c) => c.type).sort()).toEqual(Object.values(ConditionType).sort());
    const documented = new Set(CONDITIONS.flatMap((c) => c.reasons));
    expect(Object.values(ConditionReason).filter((r) => !documented.has(r))).toEqual([]);
  });

  it("replaces only what lies between the markers", () => {
    const readme = `# x\n${TABLE_BEGIN}\nold\n${TABLE_END}\ntail\n`;
    const out = withConditionsTable(readme);
    expect(out).toBe(`# x\n${TABLE_BEGIN}\n${renderConditionsTable()}\n${TABLE_END}\ntail\n`);
    expect(withConditionsTable(out)).toBe(out);
    expect(out).toContain("| `EgressReady` |");
    expect(() => withConditionsTable("no markers")).toThrow(/markers/);
  });
});
