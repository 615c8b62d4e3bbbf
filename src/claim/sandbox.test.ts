import { describe, expect, it } from "vitest";
import { Labels } from "../api/labels.js";
import type { SandboxClaim } from "../api/pools.js";
import type { SandboxSpec } from "../api/sandbox-spec.js";
import { bindPatch, coldSandbox } from "./sandbox.js";

const template: SandboxSpec = {
  image: "busybox",
  env: [
    { name: "A", value: "template" },
    { name: "B", value: "b" },
  ],
  resources: { cpu: "1", memory: "1Gi", pids: 1024 },
  lifetime: { ttlSeconds: 600, onExpire: "Retain" },
  network: { egress: { defaultAction: "deny", rules: [{ action: "allow", target: "t.example" }] } },
  security: { readOnlyRootFilesystem: false },
};
const claim = (spec: Partial<SandboxClaim["spec"]> = {}): SandboxClaim => ({
  apiVersion: "sandboxing.dev/v1alpha1",
  kind: "SandboxClaim",
  metadata: { name: "c", namespace: "ns", uid: "uid-1" },
  spec: { templateRef: { name: "t" }, ...spec },
});

describe("bindPatch", () => {
  const patch = bindPatch(
    claim({
      egress: { defaultAction: "deny", rules: [{ action: "allow", target: "c.example" }] },
      labels: { team: "a" },
    }),
    { resourceVersion: "42" },
    template,
    "p",
    Date.UTC(2030, 0, 1),
  );

  it("is conditional on the resourceVersion the sandbox was chosen at", () => {
    expect(patch.metadata.resourceVersion).toBe("42");
  });

  it("moves the sandbox from the pool to the claim", () => {
    expect(patch.metadata.labels).toMatchObject({
      [Labels.pool]: null,
      [Labels.claim]: "c",
      [Labels.claimUid]: "uid-1",
      [Labels.claimedFromPool]: "p",
      team: "a",
    });
    expect(patch.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: "SandboxClaim", uid: "uid-1", controller: true }),
    ]);
  });

  it("gives it the claim's policy and a lifetime counted from the claim", () => {
    expect(patch.spec.network.egress.rules).toEqual([{ action: "allow", target: "c.example" }]);
    expect(patch.spec.lifetime).toEqual({
      ttlSeconds: null,
      expiresAt: "2030-01-01T00:00:00Z",
      onExpire: "Retain",
    });
  });
});

describe("coldSandbox", () => {
  it("is the template with the claim's overrides, named and owned by the claim", () => {
    const s = coldSandbox(
      claim({ env: [{ name: "A", value: "claim" }] }),
      template,
      Date.UTC(2030, 0, 1),
    );
    expect(s.metadata).toMatchObject({ name: "c", namespace: "ns" });
    expect(s.metadata.labels[Labels.claimUid]).toBe("uid-1");
    expect(s.spec.env).toEqual([
      { name: "A", value: "claim" },
      { name: "B", value: "b" },
    ]);
    expect(s.spec.network.egress).toEqual(template.network.egress);
    expect(s.spec.lifetime).toEqual({ expiresAt: "2030-01-01T00:00:00Z", onExpire: "Retain" });
  });
});
