import { describe, expect, it } from "vitest";
import type { Sandbox } from "../../api/sandbox.js";
import { SandboxSpecSchema } from "../../api/sandbox-spec.js";
import type { SandboxSnapshot } from "../../api/snapshot.js";
import {
  existingWorkspaceProblem,
  removesVolume,
  snapshotProblem,
  sweepable,
  workspacePlan,
} from "./workspace.js";

const sandbox = (spec: Record<string, unknown> = {}): Sandbox => ({
  apiVersion: "sandboxing.dev/v1alpha1",
  kind: "Sandbox",
  metadata: { namespace: "team", name: "agent", uid: "0123456789abcdef" },
  spec: SandboxSpecSchema.parse({ image: "busybox", ...spec }),
});
const NAME = "sbx.team.agent.01234567.workspace";

describe("workspacePlan", () => {
  it("scratch: the working directory's volume, no retention label, no status", () => {
    const p = workspacePlan(sandbox({ workingDir: "/w" }), "o");
    expect(p).toMatchObject({ volume: NAME, target: "/w" });
    expect(p.create?.Labels["sandboxing.dev/retention"]).toBeUndefined();
    expect(p.status).toBeUndefined();
  });
  it("new persistent workspace: labelled with its retention", () => {
    const p = workspacePlan(
      sandbox({ workspace: { retentionPolicy: "Retain", mountPath: "/d" } }),
      "o",
    );
    expect(p.target).toBe("/d");
    expect(p.create?.Labels["sandboxing.dev/retention"]).toBe("Retain");
    expect(p.status).toEqual({ name: NAME, retentionPolicy: "Retain" });
  });
  it("existing: nothing created, retained", () => {
    const p = workspacePlan(sandbox({ workspace: { existing: { name: "v" } } }), "o");
    expect(p).toMatchObject({
      volume: "v",
      existing: true,
      status: { name: "v", retentionPolicy: "Retain" },
    });
    expect(p.create).toBeUndefined();
  });
  it("from a snapshot: recorded in the status", () => {
    const p = workspacePlan(sandbox({ workspace: { fromSnapshot: { name: "s" } } }), "o");
    expect(p.fromSnapshot).toBe("s");
    expect(p.status?.fromSnapshot).toBe("s");
  });
});

describe("existingWorkspaceProblem", () => {
  const ours = {
    "app.kubernetes.io/managed-by": "sandbox-operator",
    "sandboxing.dev/owner": "o",
    "sandboxing.dev/role": "workspace",
    "sandboxing.dev/namespace": "team",
    "sandboxing.dev/retention": "Retain",
  };
  it.each([
    ["missing", undefined, "does not exist"],
    ["hand-made", {}, "not a workspace made by this operator"],
    ["another installation", { ...ours, "sandboxing.dev/owner": "x" }, "not a workspace made"],
    ["another namespace", { ...ours, "sandboxing.dev/namespace": "other" }, "another namespace"],
    ["not retained", { ...ours, "sandboxing.dev/retention": "Delete" }, "not a retained workspace"],
    ["scratch", { ...ours, "sandboxing.dev/retention": undefined } as never, "not a retained"],
  ])("%s", (_n, labels, message) => {
    expect(existingWorkspaceProblem("v", labels, sandbox(), "o")).toContain(message);
  });
  it("a retained workspace of this namespace may be mounted", () => {
    expect(existingWorkspaceProblem("v", ours, sandbox(), "o")).toBeUndefined();
  });
});

describe("retention", () => {
  it.each([
    [undefined, false, true],
    [{}, false, true],
    [{ "sandboxing.dev/retention": "Delete" }, false, false],
    [{ "sandboxing.dev/retention": "Delete" }, true, true],
    [{ "sandboxing.dev/retention": "Retain" }, true, false],
  ])("labels %j, deleting %s: removed %s", (labels, deleting, want) =>
    expect(removesVolume(labels, deleting)).toBe(want),
  );
  it("the sweep never takes a retained workspace", () => {
    expect(sweepable({ "sandboxing.dev/retention": "Retain" })).toBe(false);
    expect(sweepable({ "sandboxing.dev/retention": "Delete" })).toBe(true);
  });
});

describe("snapshotProblem", () => {
  const snap = (status: SandboxSnapshot["status"]) =>
    ({ metadata: {}, spec: { source: { sandboxName: "a" } }, status }) as SandboxSnapshot;
  it.each([
    ["missing", undefined, true],
    ["pending", snap({ phase: "Pending" }), false],
    ["failed", snap({ phase: "Failed", reason: "SnapshotFailed" }), true],
    ["another backend", snap({ phase: "Ready", backend: "pod", handle: "h" }), true],
  ])("%s", (_n, s, stalled) => expect(snapshotProblem("n", s)?.stalled).toBe(stalled));
  it("ready on docker with a digest", () => {
    const s = snap({
      phase: "Ready",
      backend: "docker",
      handle: "h",
      checksum: `sha256:${"a".repeat(64)}`,
    });
    expect(snapshotProblem("n", s)).toBeUndefined();
  });
});
