// The zod side of the workspace and mount rules; their CEL twins are checked
// against the apiserver by the admission corpus.
import { describe, expect, it } from "vitest";
import { SandboxSpecSchema, workspaceMountPath } from "./sandbox-spec.js";
import { parseDuration, retentionOf, WorkspaceSchema } from "./workspace.js";

const spec = (extra: Record<string, unknown>) =>
  SandboxSpecSchema.safeParse({ image: "busybox", ...extra });
const firstIssue = (r: ReturnType<typeof spec>) => r.error?.issues[0];

describe("parseDuration", () => {
  it.each([
    ["90s", 90_000],
    ["15m", 900_000],
    ["1h30m", 5_400_000],
    ["250ms", 250],
    ["1h1m1s", 3_661_000],
  ])("%s is %d ms", (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(["", "15", "1d", "15 minutes", "-5s", "1.5h"])("%j is not a duration", (text) =>
    expect(parseDuration(text)).toBeUndefined(),
  );
});

describe("workspace", () => {
  it("defaults the size of a new volume only", () => {
    expect(WorkspaceSchema.parse({ volume: {} }).volume?.size).toBe("1Gi");
    expect(WorkspaceSchema.parse({}).volume).toBeUndefined();
  });

  it("retention: Delete when unset, Retain for an existing workspace", () => {
    expect(retentionOf(WorkspaceSchema.parse({}))).toBe("Delete");
    expect(retentionOf(WorkspaceSchema.parse({ retentionPolicy: "Retain" }))).toBe("Retain");
    expect(retentionOf(WorkspaceSchema.parse({ existing: { name: "w" } }))).toBe("Retain");
  });

  it.each([
    [{ existing: { name: "w" }, volume: {} }, ["workspace", "existing"]],
    [{ existing: { name: "w" }, fromSnapshot: { name: "s" } }, ["workspace", "existing"]],
    [{ existing: { name: "w" }, retentionPolicy: "Delete" }, ["workspace", "retentionPolicy"]],
    [{ mountPath: "/a/../b" }, ["workspace", "mountPath"]],
    [{ mountPath: "/.sandbox/x" }, ["workspace", "mountPath"]],
    [{ mountPath: "/a/" }, ["workspace", "mountPath"]],
  ])("rejects %j at %j", (workspace, path) => {
    expect(firstIssue(spec({ workspace }))?.path).toEqual(path);
  });

  it("mounts at its own path, else the working directory, else /workspace", () => {
    expect(workspaceMountPath({})).toBe("/workspace");
    expect(workspaceMountPath({ workingDir: "/w" })).toBe("/w");
    expect(workspaceMountPath({ workingDir: "/w", workspace: { mountPath: "/d" } })).toBe("/d");
  });
});

describe("mounts", () => {
  it("need exactly one source", () => {
    expect(firstIssue(spec({ mounts: [{ mountPath: "/x" }] }))?.message).toContain(
      "exactly one of secret, configMap or hostPath",
    );
    expect(
      spec({ mounts: [{ mountPath: "/x", secret: { name: "a" }, hostPath: { path: "/s" } }] })
        .success,
    ).toBe(false);
  });

  it("may not sit on the workspace's path", () => {
    const r = spec({ workingDir: "/w", mounts: [{ mountPath: "/w", hostPath: { path: "/s" } }] });
    expect(firstIssue(r)?.path).toEqual(["mounts"]);
    expect(
      spec({ workingDir: "/w", mounts: [{ mountPath: "/v", hostPath: { path: "/s" } }] }).success,
    ).toBe(true);
  });

  it("refuse host paths with dot segments or colons", () => {
    for (const path of ["/srv/../etc", "/srv/./a", "/a:/b", "srv"]) {
      expect(spec({ mounts: [{ mountPath: "/x", hostPath: { path } }] }).success, path).toBe(false);
    }
  });
});

describe("idleTimeout", () => {
  it.each(["10s", "15m", "8784h"])("accepts %s", (idleTimeout) =>
    expect(spec({ idleTimeout }).success).toBe(true),
  );
  it.each(["9s", "8785h", "15", "1d"])("rejects %s", (idleTimeout) =>
    expect(spec({ idleTimeout }).success).toBe(false),
  );
});
