// The shared policy vectors (test/vectors/egress-policy.json): the TypeScript
// policy must give every recorded answer, and the file must be what the cases
// generate today, so the Go sidecar's tests (which read the same file) pin
// the same behaviour.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  LOCKDOWN_FILE,
  renderLockdownVectors,
  renderVectors,
  VECTORS_FILE,
} from "../../../test/vectors/generate.js";
import {
  decideAddress,
  decideName,
  decideNameAnyPort,
  EgressPolicyError,
  judgeDestination,
  judgeRedirected,
  parsePolicy,
  reservedRanges,
} from "./index.js";

interface VectorCheck {
  op: "name" | "address" | "anyPort" | "destination" | "redirected";
  host?: string;
  ip?: string;
  name?: string;
  address?: string;
  port?: number;
  want: { verdict?: string; route?: string; rule: number | string | null };
}
interface VectorCase {
  name: string;
  policy: unknown;
  reserved?: string[];
  error?: { field: string };
  checks?: VectorCheck[];
}

const text = readFileSync(VECTORS_FILE, "utf8");
const vectors = JSON.parse(text) as { cases: VectorCase[] };

describe("egress policy vectors", () => {
  it("the file is what the cases generate (npm run vectors)", () => {
    expect(text).toBe(renderVectors());
    expect(readFileSync(LOCKDOWN_FILE, "utf8")).toBe(renderLockdownVectors());
  });

  it("cover names, wildcards, addresses, ports, reserved ranges, defaults and refusals", () => {
    const checks = vectors.cases.flatMap((c) => c.checks ?? []);
    for (const op of ["name", "address", "anyPort", "destination", "redirected"]) {
      expect(checks.filter((c) => c.op === op).length).toBeGreaterThan(20);
    }
    expect(checks.some((c) => c.want.rule === "reserved-address")).toBe(true);
    expect(checks.some((c) => c.want.rule === "default" && c.want.verdict === "allow")).toBe(true);
    expect(vectors.cases.filter((c) => c.error).length).toBeGreaterThan(20);
    for (const route of ["direct", "refuse", "name"]) {
      expect(checks.some((c) => c.want.route === route)).toBe(true);
    }
  });

  for (const c of vectors.cases) {
    it(c.name, () => {
      if (c.error) {
        let thrown: unknown;
        try {
          parsePolicy(c.policy ?? {});
        } catch (err) {
          thrown = err;
        }
        expect(thrown).toBeInstanceOf(EgressPolicyError);
        expect((thrown as EgressPolicyError).field).toBe(c.error.field);
        return;
      }
      const policy = parsePolicy(c.policy ?? {});
      const reserved = reservedRanges(c.reserved);
      for (const check of c.checks ?? []) {
        if (check.op === "redirected") {
          const r = judgeRedirected(policy, reserved, {
            address: check.address!,
            port: check.port!,
          });
          expect({ route: r.route, rule: r.rule }, JSON.stringify(check)).toEqual(check.want);
          continue;
        }
        const got =
          check.op === "name"
            ? decideName(policy, check.host!, check.port!)
            : check.op === "address"
              ? decideAddress(policy, check.ip!, check.port!)
              : check.op === "anyPort"
                ? decideNameAnyPort(policy, check.host!)
                : judgeDestination(policy, reserved, {
                    ...(check.name !== undefined ? { name: check.name } : {}),
                    address: check.address!,
                    port: check.port!,
                  });
        expect({ verdict: got.verdict, rule: got.rule }, JSON.stringify(check)).toEqual(check.want);
      }
    });
  }
});
