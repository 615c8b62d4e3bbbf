import * as k8s from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { ConditionReason } from "../../api/conditions.js";
import type { Sandbox } from "../../api/sandbox.js";
import { SandboxSpecSchema } from "../../api/sandbox-spec.js";
import { NameTakenError, refusedObservation } from "./refusal.js";

const sandbox = (runtimeClassName?: string): Sandbox => ({
  apiVersion: "sandboxing.dev/v1alpha1",
  kind: "Sandbox",
  metadata: { name: "s", namespace: "ns", uid: "u" },
  spec: SandboxSpecSchema.parse({ image: "busybox", security: { runtimeClassName } }),
});

const status = (code: number, message: string) =>
  new k8s.ApiException(code, "x", JSON.stringify({ kind: "Status", code, message }), {});

describe("refusedObservation", () => {
  it("turns a forbidden create into a stalled, retried observation with the apiserver's words", () => {
    const o = refusedObservation(
      sandbox(),
      status(403, 'pods "s" is forbidden: exceeded quota: q, requested: pods=1'),
    );
    expect(o).toEqual({
      phase: "Pending",
      ready: false,
      stalled: true,
      retry: true,
      reason: ConditionReason.Rejected,
      message: 'pods "s" is forbidden: exceeded quota: q, requested: pods=1 (HTTP 403)',
    });
  });

  it("names a missing RuntimeClass a missing reference, only for the class the spec names", () => {
    const words = 'pod rejected: RuntimeClass "gvisor" not found';
    expect(refusedObservation(sandbox("gvisor"), status(403, words))?.reason).toBe(
      ConditionReason.MissingReference,
    );
    expect(refusedObservation(sandbox("kata"), status(403, words))?.reason).toBe(
      ConditionReason.Rejected,
    );
  });

  it("reports a name someone else holds", () => {
    expect(refusedObservation(sandbox(), new NameTakenError("Service", "s"))).toMatchObject({
      reason: ConditionReason.NameTaken,
      message: "a Service named s already exists and is not owned by this sandbox",
    });
  });

  it("leaves every other error to the caller (422 is the spec's doing, 5xx is transient)", () => {
    for (const code of [400, 404, 409, 422, 500]) {
      expect(refusedObservation(sandbox(), status(code, "x"))).toBeUndefined();
    }
    expect(refusedObservation(sandbox(), new Error("ECONNRESET"))).toBeUndefined();
  });
});
