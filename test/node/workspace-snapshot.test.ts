// Snapshots of pod-backend workspaces on the real node, taken by the
// SandboxSnapshot controller (src/snapshot/) as the operator runs it. A
// workspace of the local-path class cannot be snapshotted (Failed,
// SnapshotUnsupported, naming the class); one of the node's CSI hostpath class
// is: the controller makes a VolumeSnapshot owned by the SandboxSnapshot, a
// new Sandbox whose workspace starts from it waits (SnapshotNotReady) while it
// is not ready, the controller stopped in the middle (VolumeSnapshot made,
// SandboxSnapshot still Pending) finishes on restart, the restored sandbox
// reads the workspace back byte for byte (sha256 of every file, as it was when
// taken), and deleting the SandboxSnapshot deletes its VolumeSnapshot.
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ConditionReason, ConditionType } from "../../src/api/conditions.js";
import { GROUP, SNAPSHOT_KIND, SNAPSHOT_PLURAL, VERSION } from "../../src/api/group.js";
import type { SandboxSnapshot } from "../../src/api/snapshot.js";
import { volumeSnapshotName } from "../../src/backends/pod/volume-snapshot.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { OPERATOR_IMAGE } from "../support/docker.js";
import { eventually } from "../support/eventually.js";
import { CSI_CLASS, LOCAL_PATH_CLASS } from "../support/node/index.js";
import { kubectl, NODE_SANDBOX_IMAGE, NODE_TEST_RESOURCES } from "../support/node/pods.js";
import { type RunningOperator, startOperator, startSnapshots } from "../support/operator.js";
import { condition, SandboxClient } from "../support/sandboxes.js";

const kc = kubeConfig();
const objects = kc.makeApiClient(k8s.CustomObjectsApi);
const core = kc.makeApiClient(k8s.CoreV1Api);
let ns: Awaited<ReturnType<typeof testNamespace>>;
let sbx: SandboxClient;
let operator: RunningOperator;
let snapshots: Awaited<ReturnType<typeof startSnapshots>> | undefined;

const startSnapshotController = () => startSnapshots({ namespace: ns.name });

beforeAll(async () => {
  ns = await testNamespace(kc, "wsnap");
  sbx = new SandboxClient(kc, ns.name);
  operator = await startOperator({
    namespace: ns.name,
    user: "operator-2",
    egressImage: OPERATOR_IMAGE,
  });
  snapshots = await startSnapshotController();
});
afterAll(async () => {
  await snapshots?.stop();
  await operator?.stop();
  await ns?.delete();
});

const run = (command: string) => ({
  image: NODE_SANDBOX_IMAGE,
  command: ["sh", "-c", command],
  resources: NODE_TEST_RESOURCES,
});
const logs = async (name: string) =>
  (await kubectl(["logs", "-n", ns.name, name, "-c", "sandbox"])).stdout;
/** Every file under /workspace with its digest, sorted, and the tree's listing. */
const MANIFEST =
  "cd /workspace && find . -type f -exec sha256sum {} + | sort -k2 && find . | sort | md5sum";

async function createSnapshot(name: string, source: string) {
  await objects.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns.name,
    plural: SNAPSHOT_PLURAL,
    body: {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: SNAPSHOT_KIND,
      metadata: { name },
      spec: { source: { sandboxName: source } },
    },
  });
}

const getSnapshot = (name: string) =>
  objects.getNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    plural: SNAPSHOT_PLURAL,
    namespace: ns.name,
    name,
  }) as Promise<SandboxSnapshot>;

interface VolumeSnapshotView {
  metadata: { ownerReferences?: { kind: string; name: string; controller?: boolean }[] };
  status?: { readyToUse?: boolean; restoreSize?: string };
}
const getVolumeSnapshot = (name: string) =>
  (
    objects.getNamespacedCustomObject({
      group: "snapshot.storage.k8s.io",
      version: "v1",
      plural: "volumesnapshots",
      namespace: ns.name,
      name,
    }) as Promise<VolumeSnapshotView>
  ).catch((err: { code?: number }) => {
    if (err.code === 404) return undefined;
    throw err;
  });

describe("pod-backend snapshots (real node)", () => {
  it("a local-path workspace cannot be snapshotted: Failed, SnapshotUnsupported, naming the class", async () => {
    await sbx.create("plain", {
      ...run("echo x > /workspace/x"),
      workspace: { volume: { storageClassName: LOCAL_PATH_CLASS, size: "16Mi" } },
    });
    await sbx.waitFor("plain", (s) => expect(s.status?.phase).toBe("Succeeded"), 120_000);
    await createSnapshot("plain-snap", "plain");
    const failed = await eventually(
      async () => {
        const s = await getSnapshot("plain-snap");
        expect(s.status?.phase, JSON.stringify(s.status)).toBe("Failed");
        return s;
      },
      { timeout: 30_000 },
    );
    expect(failed.status?.reason).toBe("SnapshotUnsupported");
    expect(failed.status?.message).toContain(LOCAL_PATH_CLASS);
    expect(failed.status?.conditions?.find((c) => c.type === "Ready")).toMatchObject({
      status: "False",
      reason: "SnapshotUnsupported",
    });
  });

  it.skipIf(!inject("nodeCsi"))(
    "a CSI workspace's snapshot, the controller restarted mid-way, restores into a new sandbox byte for byte",
    async () => {
      await sbx.create("src", {
        ...run(
          "head -c 8388608 /dev/urandom > /workspace/blob && mkdir -p /workspace/d && echo hi > /workspace/d/f && " +
            `ln -s d/f /workspace/link && ${MANIFEST}; sleep 3600`,
        ),
        workspace: { volume: { storageClassName: CSI_CLASS, size: "64Mi" } },
      });
      await sbx.waitFor("src", (s) => expect(s.status?.phase).toBe("Running"), 120_000);
      const before = await eventually(async () => {
        const out = await logs("src");
        expect(out).toMatch(/-\n$/);
        return out;
      });
      expect(before).toContain("./blob\n");

      await createSnapshot("snap", "src");
      const handle = volumeSnapshotName("snap");
      // The controller has made the VolumeSnapshot: stop it there, mid-way.
      await eventually(async () => expect(await getVolumeSnapshot(handle)).toBeDefined(), {
        timeout: 60_000,
        interval: 50,
      });
      await snapshots?.stop();
      snapshots = undefined;
      const midway = await getSnapshot("snap");
      expect(midway.status?.phase, JSON.stringify(midway.status)).toBe("Pending");
      expect(midway.status).toMatchObject({ backend: "pod", sourceWorkspace: "src-workspace" });
      const vs = (await getVolumeSnapshot(handle))!;
      expect(vs.metadata.ownerReferences).toEqual([
        expect.objectContaining({ kind: SNAPSHOT_KIND, name: "snap", controller: true }),
      ]);

      // A sandbox from it waits, with no Pod and no PVC, while it is not Ready.
      await sbx.create("restored", {
        ...run(MANIFEST),
        workspace: { fromSnapshot: { name: "snap" } },
      });
      const waiting = await sbx.waitFor(
        "restored",
        (s) =>
          expect(condition(s, ConditionType.WorkspaceReady)).toMatchObject({
            status: "False",
            reason: ConditionReason.SnapshotNotReady,
          }),
        60_000,
      );
      expect(waiting.status?.phase).toBe("Pending");
      const pods = await core.listNamespacedPod({ namespace: ns.name });
      expect(pods.items.map((p) => p.metadata?.name)).not.toContain("restored");

      // The copy is the CSI driver's: it completes without the controller.
      await eventually(
        async () => expect((await getVolumeSnapshot(handle))?.status?.readyToUse).toBe(true),
        { timeout: 60_000, interval: 250 },
      );
      // Changed after the snapshot: the restore must not see it.
      const changed = await kubectl([
        "exec",
        "-n",
        ns.name,
        "src",
        "-c",
        "sandbox",
        "--",
        "sh",
        "-c",
        "echo later >> /workspace/blob && rm /workspace/d/f",
      ]);
      expect(changed.code, changed.stderr).toBe(0);

      snapshots = await startSnapshotController();
      const ready = await eventually(
        async () => {
          const s = await getSnapshot("snap");
          expect(s.status?.phase, JSON.stringify(s.status)).toBe("Ready");
          return s;
        },
        { timeout: 60_000 },
      );
      expect(ready.status).toMatchObject({
        handle,
        reason: "SnapshotReady",
        sourceWorkspace: "src-workspace",
      });
      expect(ready.status?.sizeBytes).toBeGreaterThan(0);

      const s = await sbx.waitFor(
        "restored",
        (s) => expect(s.status?.phase, JSON.stringify(s.status)).toBe("Succeeded"),
        180_000,
      );
      expect(s.status?.workspace).toMatchObject({
        name: "restored-workspace",
        fromSnapshot: "snap",
      });
      expect(await logs("restored")).toBe(before);
      // The template named no class: the source's, whose driver holds the
      // snapshot (the cluster's default, local-path, cannot restore it).
      const pvc = await core.readNamespacedPersistentVolumeClaim({
        name: "restored-workspace",
        namespace: ns.name,
      });
      expect(pvc.spec?.storageClassName).toBe(CSI_CLASS);
      expect(pvc.spec?.dataSource).toMatchObject({ kind: "VolumeSnapshot", name: handle });

      // Deleting the SandboxSnapshot deletes its VolumeSnapshot (owned; garbage collection).
      await objects.deleteNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: SNAPSHOT_PLURAL,
        namespace: ns.name,
        name: "snap",
      });
      await eventually(async () => expect(await getVolumeSnapshot(handle)).toBeUndefined(), {
        timeout: 60_000,
        interval: 500,
      });
    },
    300_000,
  );
});
