// The Go egress binary (native/egress) embeds the contract as JSON; it must
// say exactly what contract.ts says.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { EGRESS_CONTRACT } from "./contract.js";

const file = new URL("../../native/egress/internal/contract/contract.json", import.meta.url);

describe("the Go egress binary's contract", () => {
  it("is contract.ts's", () => {
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual(EGRESS_CONTRACT);
  });
});
