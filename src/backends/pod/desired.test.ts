import { describe, expect, it } from "vitest";
import type { Sandbox } from "../../api/sandbox.js";
import { SandboxSpecSchema } from "../../api/sandbox-spec.js";
import { DesiredObjects } from "./desired.js";

const sandbox = (uid: string, spec = SandboxSpecSchema.parse({ image: "busybox" })): Sandbox => ({
  apiVersion: "sandboxing.dev/v1alpha1",
  kind: "Sandbox",
  metadata: { name: "s", namespace: "ns", uid },
  spec,
});

describe("DesiredObjects", () => {
  const objects = new DesiredObjects({ image: "egress:dev" });

  it("builds once per spec object and name, and afresh for a new spec or a new UID", () => {
    const a = sandbox("u1");
    const first = objects.of(a);
    expect(objects.of({ ...a, metadata: { ...a.metadata } })).toBe(first);
    expect(objects.of(sandbox("u1"))).not.toBe(first);
    const renamed = objects.of({ ...a, metadata: { ...a.metadata, uid: "u2" } });
    expect(renamed).not.toBe(first);
    expect(renamed.pod.metadata?.ownerReferences?.[0]?.uid).toBe("u2");
  });

  it("copies the Sandbox's shard label onto its objects, and rebuilds when it moves", () => {
    const a = sandbox("u3");
    const labelled = (shard: string) => ({
      ...a,
      metadata: { ...a.metadata, labels: { "sandboxing.dev/shard": shard } },
    });
    const first = objects.of(labelled("1-of-4"));
    for (const o of [first.pod, first.networkPolicy])
      expect(o.metadata?.labels?.["sandboxing.dev/shard"]).toBe("1-of-4");
    const moved = objects.of(labelled("3-of-8"));
    expect(moved.pod.metadata?.labels?.["sandboxing.dev/shard"]).toBe("3-of-8");
    expect(objects.of(a).pod.metadata?.labels?.["sandboxing.dev/shard"]).toBeUndefined();
  });

  it("keeps only the most recently used sandboxes' objects", () => {
    const small = new DesiredObjects({ image: "egress:dev" }, 2);
    const [a, b, c] = ["a", "b", "c"].map((n) => {
      const s = sandbox(`uid-${n}`);
      return { ...s, metadata: { ...s.metadata, name: n } };
    }) as [Sandbox, Sandbox, Sandbox];
    const first = small.of(a);
    small.of(b);
    expect(small.of(a)).toBe(first); // a is now the most recent
    small.of(c); // evicts b
    expect(small.of(a)).toBe(first);
    const bAgain = small.of(b);
    expect(small.of(b)).toBe(bAgain);
    expect(small.of(c)).not.toBe(undefined);
  });
});
