import { describe, expect, it } from "vitest";
import { type ConditionLike, findCondition, isTrue, setCondition } from "./conditions.js";

const none: ConditionLike[] = [];

const t0 = new Date("2030-01-01T00:00:00.123Z");
const t1 = new Date("2030-01-01T00:05:00Z");

describe("setCondition", () => {
  it("adds a condition with the transition time", () => {
    const list = setCondition(
      none,
      { type: "Ready", status: "False", reason: "Creating", message: "m" },
      t0,
    );
    expect(list).toEqual([
      {
        type: "Ready",
        status: "False",
        reason: "Creating",
        message: "m",
        lastTransitionTime: "2030-01-01T00:00:00Z",
      },
    ]);
  });

  it("keeps lastTransitionTime when only reason or message change", () => {
    const a = setCondition(
      none,
      { type: "Ready", status: "False", reason: "Creating", message: "m" },
      t0,
    );
    const b = setCondition(
      a,
      { type: "Ready", status: "False", reason: "ImagePullBackOff", message: "x" },
      t1,
    );
    expect(b[0]).toMatchObject({
      reason: "ImagePullBackOff",
      lastTransitionTime: "2030-01-01T00:00:00Z",
    });
  });

  it("moves lastTransitionTime on a status change, without touching other conditions", () => {
    const a = setCondition(
      setCondition(none, { type: "Ready", status: "False", reason: "Creating", message: "" }, t0),
      { type: "Expired", status: "False", reason: "NotExpired", message: "" },
      t0,
    );
    const b = setCondition(
      a,
      { type: "Ready", status: "True", reason: "Running", message: "" },
      t1,
    );
    expect(findCondition(b, "Ready")?.lastTransitionTime).toBe("2030-01-01T00:05:00Z");
    expect(findCondition(b, "Expired")).toEqual(a[1]);
    expect(isTrue(b, "Ready")).toBe(true);
    expect(a[0]?.status).toBe("False"); // input untouched
  });

  it("is a fixed point: setting what is there changes nothing, so no status write follows", () => {
    const update = {
      type: "Ready",
      status: "True" as const,
      reason: "Running",
      message: "",
      observedGeneration: 2,
    };
    const a = setCondition(none, update, t0);
    expect(setCondition(a, update, t1)).toEqual(a);
    expect(a[0]?.observedGeneration).toBe(2);
    expect(setCondition(a, { ...update, observedGeneration: 3 }, t1)[0]).toMatchObject({
      observedGeneration: 3,
      lastTransitionTime: "2030-01-01T00:00:00Z",
    });
  });

  it("answers lookups on absent lists", () => {
    expect(findCondition(undefined, "Ready")).toBeUndefined();
    expect(isTrue(undefined, "Ready")).toBe(false);
  });
});
