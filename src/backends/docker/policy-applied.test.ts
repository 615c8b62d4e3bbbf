import { describe, expect, it } from "vitest";
import { policyFileDigest } from "../../egress/policy-ack.js";
import { type PolicyAppliedInput, policyApplied } from "./policy-applied.js";

const want = policyFileDigest('{"defaultAction":"deny","rules":[]}\n');
const older = policyFileDigest('{"defaultAction":"allow","rules":[]}\n');
const base = { mode: "acknowledged", want, generation: 3 } as const;

describe("policyApplied", () => {
  it.each<[string, PolicyAppliedInput, boolean, RegExp]>([
    [
      "acknowledged for this generation's file",
      { ...base, record: { sha256: want, applied: true } },
      true,
      /acknowledged the policy of generation 3/,
    ],
    ["nothing acknowledged yet", base, false, /waiting .* generation 3; the previous one stays/],
    [
      "the previous policy still acknowledged",
      { ...base, record: { sha256: older, applied: true } },
      false,
      /waiting for the egress sidecar to apply the policy of generation 3/,
    ],
    [
      "waited in vain",
      { ...base, record: { sha256: older, applied: true }, waitedMs: 1000 },
      false,
      /not acknowledged 1000 ms after it was written/,
    ],
    [
      "this generation's policy refused",
      { ...base, record: { sha256: want, applied: false, error: "invalid policy: rules[0]" } },
      false,
      /refused the policy of generation 3: invalid policy: rules\[0\]; it denies all egress/,
    ],
    [
      "the policy file unreadable",
      { ...base, record: { sha256: "", applied: false, error: "cannot read policy: ENOENT" } },
      false,
      /cannot read its policy file: cannot read policy: ENOENT/,
    ],
    [
      // An older file refused, this one not loaded yet: waiting, not refused.
      "an older policy refused",
      { ...base, record: { sha256: older, applied: false, error: "x" } },
      false,
      /^waiting/,
    ],
    [
      "this digest recorded applied but as another generation's (same bytes): in force",
      { ...base, generation: 4, record: { sha256: want, applied: true } },
      true,
      /generation 4/,
    ],
    [
      "a remote daemon: nothing comes back",
      { ...base, mode: "remote" },
      true,
      /uploaded through the Docker daemon.*not acknowledged as applied/,
    ],
    [
      "a sidecar from before acknowledgements",
      { ...base, mode: "legacy", record: { sha256: older, applied: true } },
      true,
      /predates policy acknowledgements/,
    ],
  ])("%s", (_, input, applied, message) => {
    const got = policyApplied(input);
    expect(got.applied).toBe(applied);
    expect(got.message).toMatch(message);
  });
});
