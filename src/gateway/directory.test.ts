import { describe, expect, it } from "vitest";
import { PodReach, type SandboxObject } from "./directory.js";
import { GatewayError } from "./errors.js";

const box = (status: Record<string, unknown>) =>
  ({
    metadata: { name: "b", namespace: "ns", uid: "u1" },
    spec: {},
    status: { backend: "pod", ...status },
  }) as unknown as SandboxObject;

describe("PodReach.logs", () => {
  it.each([
    ["no kubeconfig", undefined, box({ podName: "b" }), /reads no pod logs/],
    ["no Pod yet", {}, box({}), /no Pod yet/],
  ])("%s: 503 SANDBOX_NOT_READY before any request", async (_, kc, s, message) => {
    const reach = new PodReach(undefined, kc as never);
    const err = await reach.logs(s, {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect(err).toMatchObject({ status: 503, code: "SANDBOX_NOT_READY", message });
  });
});
