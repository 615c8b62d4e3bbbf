// The SDK's claim options -> SandboxClaim mapping and its reading of a
// claim's status, table-driven (pure: no cluster).
import { describe, expect, it } from "vitest";
import { claimBody, claimInfoOf, claimVerdict } from "../../packages/sdk/src/claim.js";
import { SandboxError } from "../../src/dataplane/errors.js";

describe("claimBody", () => {
  it.each([
    [
      "template only: a generated name, nothing else",
      ["py", {}],
      { metadata: { generateName: "sbx-" }, spec: { templateRef: { name: "py" } } },
    ],
    [
      "pool, name, labels and annotations",
      ["py", { pool: "fast", name: "agent-1", labels: { a: "1" }, annotations: { b: "2" } }],
      {
        metadata: { name: "agent-1" },
        spec: {
          templateRef: { name: "py" },
          poolRef: { name: "fast" },
          labels: { a: "1" },
          annotations: { b: "2" },
        },
      },
    ],
    [
      "egress policy as given",
      ["py", { egress: { rules: [{ action: "allow", target: "pypi.org", ports: [443] }] } }],
      {
        spec: {
          templateRef: { name: "py" },
          egress: { rules: [{ action: "allow", target: "pypi.org", ports: [443] }] },
        },
      },
    ],
    [
      "ttlSeconds and onExpire become the claim's lifetime",
      ["py", { ttlSeconds: 900, onExpire: "Retain" }],
      { spec: { templateRef: { name: "py" }, lifetime: { ttlSeconds: 900, onExpire: "Retain" } } },
    ],
    [
      "a Date expiry in RFC 3339 without fractions",
      ["py", { expiresAt: new Date("2030-01-02T03:04:05.678Z") }],
      { spec: { templateRef: { name: "py" }, lifetime: { expiresAt: "2030-01-02T03:04:05Z" } } },
    ],
    [
      "env as a record, in order",
      ["py", { env: { B: "2", A: "1" } }],
      {
        spec: {
          templateRef: { name: "py" },
          env: [
            { name: "B", value: "2" },
            { name: "A", value: "1" },
          ],
        },
      },
    ],
    [
      "env as a list, unchanged",
      ["py", { env: [{ name: "A", value: "1" }] }],
      { spec: { templateRef: { name: "py" }, env: [{ name: "A", value: "1" }] } },
    ],
    [
      "resources",
      ["py", { resources: { cpu: "1", memory: "1Gi" } }],
      { spec: { templateRef: { name: "py" }, resources: { cpu: "1", memory: "1Gi" } } },
    ],
  ] as const)("%s", (_, [template, options], want) => {
    const body = claimBody(template, options as Parameters<typeof claimBody>[1]);
    expect(body).toMatchObject({
      apiVersion: "sandboxing.dev/v1alpha1",
      kind: "SandboxClaim",
      ...want,
    });
    // Nothing the caller did not ask for.
    expect(Object.keys(body.spec).sort()).toEqual(Object.keys(want.spec).sort());
  });

  it.each([
    ["an empty template name", "", {}, /^invalid claim: template: .*\(spec\.templateRef\.name\)$/],
    ["a template name with capitals", "Py", {}, /^invalid claim: template: /],
    ["a pool name with a slash", "py", { pool: "a/b" }, /^invalid claim: pool: .*spec\.poolRef/],
    ["ttlSeconds 0", "py", { ttlSeconds: 0 }, /^invalid claim: ttlSeconds: .*spec\.lifetime/],
    [
      "ttlSeconds and expiresAt both",
      "py",
      { ttlSeconds: 5, expiresAt: "2030-01-01T00:00:00Z" },
      /^invalid claim: ttlSeconds: exactly one of ttlSeconds or expiresAt/,
    ],
    ["a bad expiresAt", "py", { expiresAt: "tomorrow" }, /^invalid claim: expiresAt: /],
    ["onExpire Keep", "py", { onExpire: "Keep" }, /^invalid claim: onExpire: /],
    [
      "an egress rule without a target",
      "py",
      { egress: { rules: [{ action: "allow" }] } },
      /^invalid claim: egress\.rules\.0\.target: /,
    ],
    [
      "an egress defaultAction maybe",
      "py",
      { egress: { defaultAction: "maybe" } },
      /^invalid claim: egress\.defaultAction: /,
    ],
    ["an env name with '='", "py", { env: { "A=B": "x" } }, /^invalid claim: env\.0\.name: /],
    [
      "a cpu that is no quantity",
      "py",
      { resources: { cpu: "lots" } },
      /^invalid claim: resources\.cpu: /,
    ],
    ["a claim name with capitals", "py", { name: "Agent" }, /^invalid claim: name: "Agent"/],
    [
      "a claim name of 64 characters",
      "py",
      { name: `a${"b".repeat(63)}` },
      /^invalid claim: name: /,
    ],
  ])("rejects %s, naming the option", (_, template, options, message) => {
    const call = () => claimBody(template, options as Parameters<typeof claimBody>[1]);
    expect(call).toThrow(SandboxError);
    expect(call).toThrow(message);
  });
});

const cond = (type: string, status: string, reason: string, message = "") => ({
  type,
  status,
  reason,
  message,
  lastTransitionTime: "2026-01-01T00:00:00Z",
});

describe("claimVerdict", () => {
  it.each([
    ["no status yet", {}, { state: "pending" }],
    [
      "pending with a message",
      { phase: "Pending", conditions: [cond("Ready", "False", "Unbound", "no sandbox yet")] },
      { state: "pending", message: "no sandbox yet" },
    ],
    [
      "bound, starting",
      {
        phase: "Bound",
        sandboxName: "s1",
        conditions: [cond("Bound", "True", "BoundWarm"), cond("Ready", "False", "SandboxStarting")],
      },
      { state: "bound", sandboxName: "s1" },
    ],
    [
      "ready",
      {
        phase: "Ready",
        sandboxName: "s1",
        observedGeneration: 1,
        conditions: [cond("Bound", "True", "BoundWarm"), cond("Ready", "True", "SandboxReady")],
      },
      { state: "ready", sandboxName: "s1" },
    ],
    [
      "ready for an older generation: still bound",
      {
        phase: "Ready",
        sandboxName: "s1",
        observedGeneration: 0,
        conditions: [cond("Ready", "True", "SandboxReady")],
      },
      { state: "bound", sandboxName: "s1" },
    ],
    [
      "the template is missing: failed, to be confirmed",
      {
        phase: "Pending",
        conditions: [
          cond("Bound", "False", "TemplateNotFound", "SandboxTemplate nope does not exist"),
          cond("Ready", "False", "TemplateNotFound", "no template, no sandbox"),
        ],
      },
      {
        state: "failed",
        reason: "TemplateNotFound",
        message: "claim c: SandboxTemplate nope does not exist",
        recheck: "template",
      },
    ],
    [
      "the name is taken",
      { phase: "Pending", conditions: [cond("Bound", "False", "NameTaken", "a Sandbox named c")] },
      { state: "failed", reason: "NameTaken", message: "claim c: a Sandbox named c" },
    ],
    [
      "failed: the sandbox ended",
      {
        phase: "Failed",
        sandboxName: "s1",
        conditions: [cond("Ready", "False", "SandboxFinished", "sandbox s1 is Failed")],
      },
      {
        state: "failed",
        reason: "SandboxFinished",
        message: "claim c is Failed: sandbox s1 is Failed",
      },
    ],
    [
      "expired",
      {
        phase: "Expired",
        conditions: [cond("Ready", "False", "Expired", "the claim's lifetime ran out")],
      },
      {
        state: "failed",
        reason: "Expired",
        message: "claim c is Expired: the claim's lifetime ran out",
      },
    ],
  ])("%s", (_, status, want) => {
    expect(claimVerdict({ metadata: { name: "c", generation: 1 }, status } as never)).toEqual(want);
  });
});

describe("claimInfoOf", () => {
  it("carries what the status says, and nothing it does not", () => {
    expect(
      claimInfoOf({
        metadata: { name: "c", uid: "u" },
        status: { source: "Cold", coldReason: "env: ...", readyMilliseconds: 812, phase: "Ready" },
      }),
    ).toEqual({
      name: "c",
      uid: "u",
      source: "Cold",
      coldReason: "env: ...",
      readyMilliseconds: 812,
    });
    expect(claimInfoOf({ metadata: { name: "c", uid: "u" } })).toEqual({ name: "c", uid: "u" });
  });
});
