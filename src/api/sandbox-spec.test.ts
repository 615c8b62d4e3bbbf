import { describe, expect, it } from "vitest";
import { DEFAULT_TTL_SECONDS, SandboxSpecSchema } from "./sandbox-spec.js";

// The zod side of the cross-field rules must agree with their CEL twins, which
// the admission corpus checks against the apiserver.
describe("SandboxSpecSchema", () => {
  it("applies the same defaults as the CRD", () => {
    const spec = SandboxSpecSchema.parse({ image: "busybox" });
    expect(spec.lifetime).toEqual({ ttlSeconds: DEFAULT_TTL_SECONDS, onExpire: "Delete" });
    expect(spec.network.egress.defaultAction).toBe("deny");
    expect(spec.resources).toEqual({ cpu: "1", memory: "1Gi", pids: 1024 });
    expect(spec.security.readOnlyRootFilesystem).toBe(false);
  });

  it("rejects ttlSeconds together with expiresAt, naming the field", () => {
    const result = SandboxSpecSchema.safeParse({
      image: "busybox",
      lifetime: { ttlSeconds: 5, expiresAt: "2030-01-01T00:00:00Z" },
    });
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.path).toEqual(["lifetime", "ttlSeconds"]);
    expect(result.error?.issues[0]?.message).toContain("exactly one of ttlSeconds or expiresAt");
  });

  it("rejects a lifetime with neither", () => {
    const result = SandboxSpecSchema.safeParse({
      image: "busybox",
      lifetime: { onExpire: "Retain" },
    });
    expect(result.success).toBe(false);
  });

  it("rejects value together with valueFrom", () => {
    const result = SandboxSpecSchema.safeParse({
      image: "busybox",
      env: [{ name: "A", value: "x", valueFrom: { secretKeyRef: { name: "s", key: "k" } } }],
    });
    expect(result.error?.issues[0]?.path).toEqual(["env", 0, "valueFrom"]);
  });

  it("accepts an expiry with an offset", () => {
    const spec = SandboxSpecSchema.parse({
      image: "busybox",
      lifetime: { expiresAt: "2030-01-02T15:04:05+02:00" },
    });
    expect(spec.lifetime.onExpire).toBe("Delete");
  });
});
