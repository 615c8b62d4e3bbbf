import { describe, expect, it } from "vitest";
import type { Sandbox } from "../../api/sandbox.js";
import { replaceEvent } from "./replace-reason.js";

const sandbox = (generation: number | undefined, observedGeneration: number | undefined) =>
  ({
    metadata: { name: "box", namespace: "ns", generation },
    status: observedGeneration === undefined ? undefined : { observedGeneration },
  }) as unknown as Sandbox;

describe("replaceEvent", () => {
  it.each([
    ["the spec moved on (a claim's policy on a warm sandbox)", 3, 2, "NetworkPolicyUpdated"],
    ["a new sandbox's first status not written yet", 1, undefined, "NetworkPolicyUpdated"],
    ["the spec is the observed one: someone edited ours", 2, 2, "NetworkPolicyRestored"],
    ["no generation (an object from an old client)", undefined, undefined, "NetworkPolicyRestored"],
  ])("%s", (_, generation, observed, reason) => {
    const e = replaceEvent("NetworkPolicy", "box", sandbox(generation, observed));
    expect(e.reason).toBe(reason);
    expect(e.message).toContain("NetworkPolicy box");
  });
});
