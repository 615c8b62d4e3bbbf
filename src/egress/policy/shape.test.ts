// The sidecar's hand-written shape check must accept exactly what the zod
// schema (the CRD's source of truth) accepts, and produce the same value.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EgressPolicySchema, EgressTargetSchema, LIMITS } from "../../api/sandbox-spec.js";
import { EgressPolicyError } from "./errors.js";
import { checkPolicyShape, SHAPE_LIMITS } from "./shape.js";

function shapeResult(raw: unknown) {
  try {
    return { ok: true as const, value: checkPolicyShape(raw) };
  } catch (err) {
    if (!(err instanceof EgressPolicyError)) throw err;
    return { ok: false as const, field: err.field };
  }
}

const anything = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  fc.boolean(),
  fc.string({ maxLength: 4 }),
  fc.double(),
  fc.integer(),
);
const action = fc.oneof(fc.constantFrom("allow", "deny", "Allow", ""), anything);
const port = fc.oneof(
  fc.integer({ min: -2, max: 65537 }),
  fc.double({ min: 0, max: 70000 }),
  anything,
);
const target = fc.oneof(
  fc.string({ maxLength: 3 }),
  fc.constant("x".repeat(253)),
  fc.constant("x".repeat(254)),
  anything,
);
const rule = fc.oneof(
  fc.record(
    {
      action,
      target,
      ports: fc.oneof(
        fc.array(port, { maxLength: 3 }),
        fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 33, maxLength: 34 }),
        anything,
      ),
      extra: anything,
    },
    { requiredKeys: [] },
  ),
  anything,
);
const policy = fc.oneof(
  fc.record(
    {
      defaultAction: action,
      rules: fc.oneof(fc.array(rule, { maxLength: 3 }), anything),
    },
    { requiredKeys: [] },
  ),
  anything,
  fc.array(anything, { maxLength: 2 }),
);

describe("checkPolicyShape", () => {
  it("agrees with EgressPolicySchema on acceptance and on the value produced", () => {
    fc.assert(
      fc.property(policy, (raw) => {
        const zod = EgressPolicySchema.safeParse(raw);
        const ours = shapeResult(raw);
        expect(ours.ok).toBe(zod.success);
        if (ours.ok && zod.success) expect(ours.value).toEqual(zod.data);
        if (!ours.ok && !zod.success) {
          const path = zod.error.issues[0]!.path.map((p) =>
            typeof p === "number" ? `[${p}]` : `.${String(p)}`,
          ).join("");
          expect(ours.field === "(policy)" ? "" : `.${ours.field}`.replace(".[", "[")).toBe(path);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("uses the schema's bounds", () => {
    expect(SHAPE_LIMITS.egressRules).toBe(LIMITS.egressRules);
    expect(SHAPE_LIMITS.egressRulePorts).toBe(LIMITS.egressRulePorts);
    expect(EgressTargetSchema.safeParse("x".repeat(SHAPE_LIMITS.target)).success).toBe(true);
    expect(EgressTargetSchema.safeParse("x".repeat(SHAPE_LIMITS.target + 1)).success).toBe(false);
  });
});
