import { describe, expect, it } from "vitest";
import { mergePatch, statusEqual } from "./status-writer.js";

const ready = { type: "Ready", status: "True", reason: "Running", message: "" };
const expired = { type: "Expired", status: "False", reason: "NotExpired", message: "" };

describe("statusEqual", () => {
  it("ignores the order of conditions and absent fields", () => {
    expect(
      statusEqual(
        { phase: "Running", conditions: [ready, expired], ip: undefined },
        { conditions: [expired, ready], phase: "Running", exitCode: null },
      ),
    ).toBe(true);
    expect(statusEqual(undefined, {})).toBe(true);
  });

  it("sees any other difference", () => {
    expect(statusEqual({ phase: "Running" }, { phase: "Failed" })).toBe(false);
    expect(statusEqual({ conditions: [ready] }, { conditions: [{ ...ready, message: "x" }] })).toBe(
      false,
    );
    expect(statusEqual({ endpoints: [1, 2] }, { endpoints: [2, 1] })).toBe(false);
  });
});

describe("mergePatch", () => {
  it("carries only what changed, removed keys as null, nested objects recursively", () => {
    expect(
      mergePatch(
        { phase: "Running", ip: "10.0.0.1", backend: { name: "pod", extra: 1 }, same: [1] },
        { phase: "Failed", backend: { name: "pod" }, same: [1], exitCode: 1 },
      ),
    ).toEqual({ phase: "Failed", ip: null, backend: { extra: null }, exitCode: 1 });
  });

  it("replaces arrays whole and is empty for equal inputs", () => {
    expect(mergePatch({ conditions: [ready] }, { conditions: [ready, expired] })).toEqual({
      conditions: [ready, expired],
    });
    expect(mergePatch({ a: { b: 1 } }, { a: { b: 1 } })).toEqual({});
  });
});
