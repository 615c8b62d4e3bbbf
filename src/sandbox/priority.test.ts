import { describe, expect, it } from "vitest";
import { Labels } from "../api/labels.js";
import type { Sandbox } from "../api/sandbox.js";
import { SandboxPriority, sandboxPriority } from "./priority.js";

const ready = {
  phase: "Running",
  observedGeneration: 2,
  conditions: [{ type: "Ready", status: "True" }],
};

function box(opts: {
  labels?: Record<string, string>;
  generation?: number;
  status?: unknown;
  deleting?: boolean;
}): Sandbox {
  return {
    apiVersion: "sandboxing.dev/v1alpha1",
    kind: "Sandbox",
    metadata: {
      name: "s",
      namespace: "ns",
      generation: opts.generation ?? 2,
      labels: opts.labels ?? {},
      ...(opts.deleting ? { deletionTimestamp: new Date() } : {}),
    },
    spec: { image: "busybox" },
    ...(opts.status ? { status: opts.status } : {}),
  } as unknown as Sandbox;
}

const claimed = { [Labels.claim]: "c", [Labels.claimUid]: "u1", [Labels.claimedFromPool]: "p" };

describe("sandboxPriority", () => {
  it.each([
    { name: "not in the cache", s: undefined, want: SandboxPriority.normal },
    { name: "a sandbox made directly", s: box({}), want: SandboxPriority.normal },
    {
      name: "an unclaimed pooled sandbox, not ready yet (a refill)",
      s: box({ labels: { [Labels.pool]: "p" } }),
      want: SandboxPriority.pooled,
    },
    {
      name: "an unclaimed pooled sandbox, ready",
      s: box({ labels: { [Labels.pool]: "p" }, status: ready }),
      want: SandboxPriority.pooled,
    },
    {
      name: "just bound to a claim while Ready: the claim's policy not applied yet (generation ahead)",
      s: box({ labels: claimed, generation: 3, status: ready }),
      want: SandboxPriority.claimWarm,
    },
    {
      name: "bound to a claim while still starting (Warming): containers to make",
      s: box({
        labels: claimed,
        generation: 3,
        status: { phase: "Pending", observedGeneration: 2 },
      }),
      want: SandboxPriority.claimWaiting,
    },
    {
      name: "a cold claim's sandbox, no status yet",
      s: box({ labels: { [Labels.claim]: "c", [Labels.claimUid]: "u1" } }),
      want: SandboxPriority.claimWaiting,
    },
    {
      name: "bound and Ready at its generation: served",
      s: box({ labels: claimed, status: ready }),
      want: SandboxPriority.normal,
    },
    {
      name: "bound and finished: nothing to wait for",
      s: box({ labels: claimed, status: { phase: "Failed", observedGeneration: 2 } }),
      want: SandboxPriority.normal,
    },
    {
      name: "bound and being deleted",
      s: box({ labels: claimed, generation: 3, deleting: true }),
      want: SandboxPriority.normal,
    },
  ])("$name", ({ s, want }) => {
    expect(sandboxPriority(s)).toBe(want);
  });
});
