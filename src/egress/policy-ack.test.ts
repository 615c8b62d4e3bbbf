import { describe, expect, it } from "vitest";
import { policyDocument } from "./contract.js";
import { parsePolicyAck, policyFileDigest } from "./policy-ack.js";

// The same vector as native/egress/internal/sidecar/ack_test.go: both sides name a file alike.
const DENY_ALL_FILE = `${policyDocument({ defaultAction: "deny" })}\n`;
const DENY_ALL_DIGEST = "74d84807bfcb476578d8653f61df7c7106c47913e18b969ed82071d3e0b5f47d";

describe("the policy acknowledgement", () => {
  it("names a policy file by the sha256 of its bytes, as the sidecar does", () => {
    expect(policyFileDigest(DENY_ALL_FILE)).toBe(DENY_ALL_DIGEST);
    expect(policyFileDigest(Buffer.from(DENY_ALL_FILE))).toBe(DENY_ALL_DIGEST);
  });

  it.each([
    [
      `{"sha256":"${DENY_ALL_DIGEST}","applied":true}\n`,
      { sha256: DENY_ALL_DIGEST, applied: true },
    ],
    [
      `{"sha256":"","applied":false,"error":"cannot read policy"}\n`,
      { sha256: "", applied: false, error: "cannot read policy" },
    ],
    ["", undefined], // created, not written yet
    [`{"sha256":"${DENY_ALL_DIGEST}","app`, undefined], // torn: read mid-write
    [`{"sha256":"${DENY_ALL_DIGEST}","applied":true}\n"applied":true}\n`, undefined], // longer record not yet cut
    [`{"sha256":"not hex","applied":true}`, undefined],
    [`{"sha256":"${DENY_ALL_DIGEST}"}`, undefined],
  ])("reads %j as %j", (text, record) => {
    expect(parsePolicyAck(text)).toEqual(record);
  });
});
