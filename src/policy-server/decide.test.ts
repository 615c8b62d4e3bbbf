import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { Sandbox } from "../api/sandbox.js";
import { POD_NAME_EXTRA, POD_UID_EXTRA, POLICY_AUDIENCE, policyHash } from "./contract.js";
import { ackDecision, authorize, identityOf, isRefusal, policyMessage } from "./decide.js";

const sandbox = (over: Partial<Sandbox["metadata"]> = {}): Sandbox =>
  ({
    metadata: { name: "a", namespace: "ns", uid: "sbx-uid", generation: 3, ...over },
    spec: {
      network: {
        egress: { defaultAction: "deny", rules: [{ action: "allow", target: "pypi.org" }] },
      },
    },
  }) as unknown as Sandbox;
const pod = (over: Partial<NonNullable<V1Pod["metadata"]>> = {}): V1Pod => ({
  metadata: {
    name: "a",
    namespace: "ns",
    uid: "pod-uid",
    ownerReferences: [
      {
        apiVersion: "sandboxing.dev/v1alpha1",
        kind: "Sandbox",
        name: "a",
        uid: "sbx-uid",
        controller: true,
      },
    ],
    ...over,
  },
});
const review = (over: Record<string, unknown> = {}) => ({
  authenticated: true,
  audiences: [POLICY_AUDIENCE],
  user: {
    username: "system:serviceaccount:ns:default",
    extra: { [POD_NAME_EXTRA]: ["a"], [POD_UID_EXTRA]: ["pod-uid"] },
  },
  ...over,
});
const id = { namespace: "ns", serviceAccount: "default", podName: "a", podUid: "pod-uid" };

describe("identityOf", () => {
  it.each([
    ["a Pod-bound token for our audience", review(), undefined],
    ["an unauthenticated token", review({ authenticated: false }), "TOKEN_REJECTED"],
    [
      "another audience",
      review({ audiences: ["https://kubernetes.default.svc"] }),
      "WRONG_AUDIENCE",
    ],
    ["no audience", review({ audiences: undefined }), "WRONG_AUDIENCE"],
    [
      "a user, not a ServiceAccount",
      review({ user: { username: "alice" } }),
      "NOT_A_SERVICE_ACCOUNT",
    ],
    [
      "a ServiceAccount token bound to no Pod",
      review({ user: { username: "system:serviceaccount:ns:default" } }),
      "NOT_POD_BOUND",
    ],
  ])("%s", (_, status, code) => {
    const got = identityOf(status);
    if (code) expect(isRefusal(got) && got.code).toBe(code);
    else expect(got).toEqual(id);
  });
  it("a missing answer is a refusal", () => {
    expect(isRefusal(identityOf(undefined))).toBe(true);
  });
});

describe("authorize", () => {
  it.each([
    ["the Sandbox's current Pod", pod(), sandbox(), undefined],
    ["no such Pod", undefined, sandbox(), "NO_SUCH_POD"],
    [
      "a replaced Pod (the token names the old UID)",
      pod({ uid: "new-uid" }),
      sandbox(),
      "POD_REPLACED",
    ],
    ["a terminating Pod", pod({ deletionTimestamp: new Date() }), sandbox(), "POD_TERMINATING"],
    ["a Pod no Sandbox controls", pod({ ownerReferences: [] }), sandbox(), "NOT_A_SANDBOX_POD"],
    ["a Sandbox that is gone", pod(), undefined, "NO_SANDBOX"],
    ["a newer Sandbox of the same name", pod(), sandbox({ uid: "other" }), "NO_SANDBOX"],
  ])("%s", (_, p, s, code) => {
    const got = authorize(id, p, s);
    if (code) expect(isRefusal(got) && got.code).toBe(code);
    else expect(got).toBe(s);
  });
});

describe("messages and acknowledgements", () => {
  it("sends the policy with its generation and digest", () => {
    const m = policyMessage(sandbox());
    expect(m).toEqual({
      generation: 3,
      hash: policyHash(sandbox().spec.network.egress),
      policy: { defaultAction: "deny", rules: [{ action: "allow", target: "pypi.org" }] },
    });
  });
  it("records an ack of the policy in force, once", () => {
    const hash = policyHash(sandbox().spec.network.egress);
    expect(ackDecision({ generation: 3, hash }, sandbox(), undefined)).toEqual({ record: true });
    expect(ackDecision({ generation: 3, hash }, sandbox(), hash)).toEqual({ record: false });
  });
  it("refuses an ack of another policy (409)", () => {
    const got = ackDecision({ generation: 2, hash: "0".repeat(64) }, sandbox(), undefined);
    expect(isRefusal(got) && got.status).toBe(409);
  });
});

describe("policyHash", () => {
  it("does not depend on the order of a rule's keys (the apiserver's vs the schema's)", () => {
    const apiserver = {
      defaultAction: "deny" as const,
      rules: [{ action: "allow" as const, ports: [443], target: "a.example" }],
    };
    const schema = {
      defaultAction: "deny" as const,
      rules: [{ action: "allow" as const, target: "a.example", ports: [443] }],
    };
    expect(policyHash(apiserver)).toBe(policyHash(schema));
    expect(policyHash(schema)).not.toBe(
      policyHash({ ...schema, rules: [{ ...schema.rules[0]!, ports: [80] }] }),
    );
  });
});
