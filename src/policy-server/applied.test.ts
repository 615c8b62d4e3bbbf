import { describe, expect, it } from "vitest";
import { AppliedPolicies } from "./applied.js";

describe("AppliedPolicies", () => {
  it("keeps the last digest per Pod UID", () => {
    const a = new AppliedPolicies();
    a.record("pod-1", "h1");
    a.record("pod-1", "h2");
    a.record("pod-2", "h3");
    expect(a.get("pod-1")).toBe("h2");
    expect(a.get("pod-2")).toBe("h3");
    expect(a.get("pod-3")).toBeUndefined();
  });
  it("forgets the least recently recorded Pod past its bound", () => {
    const a = new AppliedPolicies(2);
    a.record("pod-1", "h1");
    a.record("pod-2", "h2");
    a.record("pod-1", "h1b"); // pod-1 is now the newest
    a.record("pod-3", "h3");
    expect(a.get("pod-2")).toBeUndefined();
    expect(a.get("pod-1")).toBe("h1b");
    expect(a.get("pod-3")).toBe("h3");
  });
});
