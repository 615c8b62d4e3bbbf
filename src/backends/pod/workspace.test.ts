import type { V1PersistentVolumeClaim } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { ConditionReason } from "../../api/conditions.js";
import type { Sandbox } from "../../api/sandbox.js";
import { type SandboxSpecInput, SandboxSpecSchema } from "../../api/sandbox-spec.js";
import { desiredPod } from "./pod.js";
import {
  desiredVolumeSnapshot,
  quantityBytes,
  snapshotClassFor,
  volumeSnapshotState,
} from "./volume-snapshot.js";
import {
  claimReadiness,
  desiredWorkspaceClaim,
  extraMounts,
  judgeExistingClaim,
  judgeTemplateClaim,
  RETENTION_LABEL,
  WORKSPACE_LABEL,
  workspaceStatus,
} from "./workspace.js";

function sandbox(spec: Partial<SandboxSpecInput>, name = "agent", uid = "uid-1"): Sandbox {
  return {
    apiVersion: "sandboxing.dev/v1alpha1",
    kind: "Sandbox",
    metadata: { name, namespace: "team", uid, generation: 1 },
    spec: SandboxSpecSchema.parse({ image: "busybox", ...spec }),
  };
}

describe("desiredWorkspaceClaim", () => {
  it("Delete (the default): owned by the Sandbox, from the template", () => {
    const pvc = desiredWorkspaceClaim(
      sandbox({ workspace: { volume: { size: "5Gi", storageClassName: "fast" } } }),
    )!;
    expect(pvc.metadata).toMatchObject({
      name: "agent-workspace",
      namespace: "team",
      labels: { [WORKSPACE_LABEL]: "agent", [RETENTION_LABEL]: "Delete" },
    });
    expect(pvc.metadata?.ownerReferences).toEqual([
      expect.objectContaining({ kind: "Sandbox", uid: "uid-1", controller: true }),
    ]);
    expect(pvc.spec).toEqual({
      storageClassName: "fast",
      accessModes: ["ReadWriteOnce"],
      resources: { requests: { storage: "5Gi" } },
      dataSource: undefined,
    });
  });

  it("Retain: no owner reference at all, so no cascade can take it", () => {
    const pvc = desiredWorkspaceClaim(sandbox({ workspace: { retentionPolicy: "Retain" } }))!;
    expect(pvc.metadata?.ownerReferences).toBeUndefined();
    expect(pvc.metadata?.labels?.[RETENTION_LABEL]).toBe("Retain");
    expect(pvc.spec?.resources?.requests?.storage).toBe("1Gi");
    expect(pvc.spec?.storageClassName).toBeUndefined();
  });

  it("from a snapshot: the VolumeSnapshot as data source", () => {
    const pvc = desiredWorkspaceClaim(
      sandbox({ workspace: { fromSnapshot: { name: "nightly" } } }),
      { volumeSnapshot: "sbx-nightly" },
    )!;
    expect(pvc.spec?.dataSource).toEqual({
      apiGroup: "snapshot.storage.k8s.io",
      kind: "VolumeSnapshot",
      name: "sbx-nightly",
    });
    expect(pvc.spec?.storageClassName).toBeUndefined();
    expect(pvc.spec?.resources?.requests?.storage).toBe("1Gi");
  });

  it.each([
    {
      what: "no class in the template: the source workspace's (the default may not restore it)",
      volume: undefined,
      source: { storageClassName: "csi-fast" },
      want: { storageClassName: "csi-fast", storage: "1Gi" },
    },
    {
      what: "a class in the template wins",
      volume: { storageClassName: "csi-other" },
      source: { storageClassName: "csi-fast" },
      want: { storageClassName: "csi-other", storage: "1Gi" },
    },
    {
      what: "a snapshot larger than the requested size: its restore size",
      volume: { size: "64Mi" },
      source: { sizeBytes: 2 * 1024 ** 3 },
      want: { storageClassName: undefined, storage: String(2 * 1024 ** 3) },
    },
    {
      what: "a snapshot smaller than the requested size: the requested size",
      volume: { size: "10Gi" },
      source: { sizeBytes: 64 * 1024 ** 2 },
      want: { storageClassName: undefined, storage: "10Gi" },
    },
  ])("from a snapshot, $what", ({ volume, source, want }) => {
    const pvc = desiredWorkspaceClaim(
      sandbox({ workspace: { fromSnapshot: { name: "nightly" }, ...(volume ? { volume } : {}) } }),
      { volumeSnapshot: "sbx-nightly", ...source },
    )!;
    expect(pvc.spec?.storageClassName).toBe(want.storageClassName);
    expect(pvc.spec?.resources?.requests?.storage).toBe(want.storage);
  });

  it("existing: nothing to make; the status names the claim, always retained", () => {
    const s = sandbox({ workspace: { existing: { name: "old-workspace" } } });
    expect(desiredWorkspaceClaim(s)).toBeUndefined();
    expect(workspaceStatus(s)).toEqual({
      name: "old-workspace",
      retentionPolicy: "Retain",
      fromSnapshot: undefined,
    });
    expect(workspaceStatus(sandbox({}))).toBeUndefined();
  });
});

describe("judging a claim found under the workspace's name", () => {
  const s = sandbox({ workspace: {} });
  const claim = (meta: V1PersistentVolumeClaim["metadata"]): V1PersistentVolumeClaim => ({
    metadata: { name: "agent-workspace", ...meta },
  });
  it.each([
    ["owned by this sandbox", claim({ ownerReferences: [owner("uid-1")] }), true, undefined],
    [
      "retained by an earlier namesake",
      claim({ labels: { [WORKSPACE_LABEL]: "agent", [RETENTION_LABEL]: "Retain" } }),
      true,
      undefined,
    ],
    [
      "owned by an earlier namesake (going with it)",
      claim({ ownerReferences: [owner("uid-0")] }),
      false,
      ConditionReason.WorkspacePending,
    ],
    ["someone else's", claim({ labels: { app: "db" } }), false, ConditionReason.WorkspaceNotFound],
    [
      "retained by another sandbox",
      claim({ labels: { [WORKSPACE_LABEL]: "other", [RETENTION_LABEL]: "Retain" } }),
      false,
      ConditionReason.WorkspaceNotFound,
    ],
  ])("%s", (_, c, use, reason) => {
    const v = judgeTemplateClaim(s, c);
    expect(v.use).toBe(use);
    if (!v.use) expect(v.reason).toBe(reason);
  });

  it("existing: missing or being deleted is WorkspaceNotFound, stalled", () => {
    const missing = judgeExistingClaim("x", undefined);
    expect(missing).toMatchObject({ use: false, reason: "WorkspaceNotFound", stalled: true });
    expect(!missing.use && missing.message).toContain("x");
    expect(
      judgeExistingClaim("x", { metadata: { name: "x", deletionTimestamp: new Date() } }),
    ).toMatchObject({ use: false, reason: "WorkspaceNotFound" });
    expect(judgeExistingClaim("x", { metadata: { name: "x" } })).toEqual({ use: true });
  });

  it("readiness: bound and mounted by a running Pod", () => {
    const bound = { metadata: { name: "c" }, status: { phase: "Bound" } };
    expect(claimReadiness("c", bound, true).reason).toBe(ConditionReason.WorkspaceBound);
    // An existing PVC the cache does not show: the running Pod vouches for it.
    expect(claimReadiness("c", undefined, true).ready).toBe(true);
    expect(claimReadiness("c", bound, false)).toMatchObject({
      ready: false,
      reason: "WorkspacePending",
    });
    expect(claimReadiness("c", { metadata: { name: "c" } }, false).message).toBe(
      "PVC c is Pending (a class that binds on first use waits for the pod)",
    );
  });
});

describe("the Pod's volumes", () => {
  const EGRESS = { image: "op:test" };
  const mountsOf = (s: Sandbox) => desiredPod(s, EGRESS).spec!.containers[0]!.volumeMounts!;
  const volumesOf = (s: Sandbox) => desiredPod(s, EGRESS).spec!.volumes!;

  it("the workspace PVC replaces the scratch working directory at the same path", () => {
    const s = sandbox({ workspace: {} });
    expect(mountsOf(s).filter((m) => m.mountPath === "/workspace")).toEqual([
      { name: "persistent-workspace", mountPath: "/workspace" },
    ]);
    expect(volumesOf(s).find((v) => v.name === "persistent-workspace")).toEqual({
      name: "persistent-workspace",
      persistentVolumeClaim: { claimName: "agent-workspace" },
    });
    expect(volumesOf(s).some((v) => v.name === "workspace")).toBe(false);
  });

  it("elsewhere, the working directory stays scratch", () => {
    const s = sandbox({ workingDir: "/work", workspace: { mountPath: "/data" } });
    expect(mountsOf(s).map((m) => m.mountPath)).toEqual(expect.arrayContaining(["/work", "/data"]));
  });

  it("Secrets and ConfigMaps are mounted readOnly (a read-only bind mount, EROFS)", () => {
    const { volumes, mounts } = extraMounts([
      { mountPath: "/etc/creds", secret: { name: "creds" } },
      { mountPath: "/etc/app", configMap: { name: "conf", optional: true } },
    ]);
    expect(mounts).toEqual([
      { name: "mount-0", mountPath: "/etc/creds", readOnly: true },
      { name: "mount-1", mountPath: "/etc/app", readOnly: true },
    ]);
    expect(volumes).toEqual([
      { name: "mount-0", secret: { secretName: "creds", optional: undefined, defaultMode: 0o440 } },
      { name: "mount-1", configMap: { name: "conf", optional: true, defaultMode: 0o444 } },
    ]);
  });
});

describe("VolumeSnapshots", () => {
  const cls = (name: string, driver: string, isDefault = false) => ({
    metadata: {
      name,
      annotations: isDefault
        ? { "snapshot.storage.kubernetes.io/is-default-class": "true" }
        : ({} as Record<string, string>),
    },
    driver,
  });
  it.each([
    ["the driver's only class", [cls("a", "d1"), cls("b", "d2")], "a"],
    ["the driver's default class", [cls("a", "d1"), cls("b", "d1", true)], "b"],
    ["none for the driver", [cls("b", "d2")], undefined],
    ["several, no default: not ours to pick", [cls("a", "d1"), cls("b", "d1")], undefined],
  ])("class: %s", (_, classes, want) => {
    expect(snapshotClassFor("d1", classes)?.metadata?.name).toBe(want);
  });

  it("is owned by its SandboxSnapshot", () => {
    const vs = desiredVolumeSnapshot({
      snapshot: { name: "nightly", namespace: "team", uid: "s-1", kind: "SandboxSnapshot" },
      claimName: "agent-workspace",
      className: "csi",
    });
    expect(vs.metadata?.name).toBe("sbx-nightly");
    expect(vs.metadata?.ownerReferences?.[0]).toMatchObject({ uid: "s-1", controller: true });
    expect(vs.spec).toEqual({
      volumeSnapshotClassName: "csi",
      source: { persistentVolumeClaimName: "agent-workspace" },
    });
  });

  it.each([
    [
      { readyToUse: true, restoreSize: "4Mi" },
      { state: "ready", sizeBytes: 4 * 2 ** 20 },
    ],
    [{ error: { message: "boom" } }, { state: "failed", message: "boom" }],
    [
      { error: { message: "retrying" }, boundVolumeSnapshotContentName: "c" },
      { state: "pending", message: "retrying" },
    ],
    [{}, { state: "pending" }],
  ])("state of %j", (status, want) => {
    expect(volumeSnapshotState({ metadata: { name: "v" }, status })).toMatchObject(want);
  });

  it("sizes", () => {
    expect(quantityBytes("1Gi")).toBe(2 ** 30);
    expect(quantityBytes("4194304")).toBe(4194304);
    expect(quantityBytes("nonsense")).toBeUndefined();
  });
});

function owner(uid: string) {
  return {
    apiVersion: "sandboxing.dev/v1alpha1",
    kind: "Sandbox",
    name: "agent",
    uid,
    controller: true,
  };
}
