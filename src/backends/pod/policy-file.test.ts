import { describe, expect, it } from "vitest";
import type { EgressPolicy } from "../../api/sandbox-spec.js";
import {
  annotationHolds,
  POLICY_FILE_DEFER_MS,
  type PolicyFileInput,
  policyFileAction,
} from "./policy-file.js";

const base: PolicyFileInput = {
  current: false,
  channel: true,
  sidecarReady: true,
  ackOnPod: false,
  deferredForMs: undefined,
};

describe("policyFileAction", () => {
  it.each<[string, Partial<PolicyFileInput>, ReturnType<typeof policyFileAction>]>([
    ["the file already holds the policy", { current: true }, "none"],
    ["…even without a channel", { current: true, channel: false }, "none"],
    ["no channel: the file is the only way in", { channel: false }, "write"],
    ["a sidecar that is not ready acknowledges nothing", { sidecarReady: false }, "write"],
    ["acknowledged on the Pod without the file (an older endpoint)", { ackOnPod: true }, "write"],
    ["first look: left to the channel's acknowledgement", {}, "defer"],
    ["still within the wait", { deferredForMs: POLICY_FILE_DEFER_MS - 1 }, "defer"],
    [
      "the wait is over, no acknowledgement: written",
      { deferredForMs: POLICY_FILE_DEFER_MS },
      "write",
    ],
    ["a custom wait", { deferredForMs: 50, deferMs: 40 }, "write"],
  ])("%s", (_, over, want) => {
    expect(policyFileAction({ ...base, ...over })).toBe(want);
  });
});

describe("annotationHolds", () => {
  const policy: EgressPolicy = {
    defaultAction: "deny",
    rules: [{ action: "allow", target: "a.example", ports: [443] }],
  };
  it("compares by digest, not text: the endpoint writes the apiserver's key order", () => {
    const reordered =
      '{"rules":[{"ports":[443],"target":"a.example","action":"allow"}],"defaultAction":"deny"}';
    expect(annotationHolds(reordered, policy)).toBe(true);
  });
  it("tells another policy, a missing annotation and an unreadable one apart from the policy", () => {
    expect(annotationHolds('{"defaultAction":"deny","rules":[]}', policy)).toBe(false);
    expect(annotationHolds(undefined, policy)).toBe(false);
    expect(annotationHolds("{not json", policy)).toBe(false);
  });
});
