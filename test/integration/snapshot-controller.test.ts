// The SandboxSnapshot controller against the real apiserver, where no backend
// copies anything: a source that does not exist yet (waited for, then judged
// when it appears), a source without a workspace (NoWorkspace), a pod-backend
// source whose workspace PVC is not there (recorded, waited for; no finalizer,
// the VolumeSnapshot would be owned), its source deleted mid-way
// (SourceNotFound), Events, and deletion. The copies themselves:
// test/docker/snapshot-controller.test.ts.
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  API_VERSION,
  GROUP,
  SANDBOX_KIND,
  SANDBOX_PLURAL,
  SNAPSHOT_KIND,
  SNAPSHOT_PLURAL,
  VERSION,
} from "../../src/api/group.js";
import type { SandboxSnapshot } from "../../src/api/snapshot.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";
import { startSnapshots } from "../support/operator.js";

const kc = kubeConfig();
const objects = kc.makeApiClient(k8s.CustomObjectsApi);
const core = kc.makeApiClient(k8s.CoreV1Api);
let ns: Awaited<ReturnType<typeof testNamespace>>;
let controller: Awaited<ReturnType<typeof startSnapshots>>;

beforeAll(async () => {
  ns = await testNamespace(kc, "snapshot-ctl");
  controller = await startSnapshots({ namespace: ns.name });
});
afterAll(async () => {
  await controller?.stop();
  await ns?.delete();
});

const snapshots = { group: GROUP, version: VERSION, plural: SNAPSHOT_PLURAL };
const sandboxes = { group: GROUP, version: VERSION, plural: SANDBOX_PLURAL };

const createSnapshot = (name: string, source: string) =>
  objects.createNamespacedCustomObject({
    ...snapshots,
    namespace: ns.name,
    body: {
      apiVersion: API_VERSION,
      kind: SNAPSHOT_KIND,
      metadata: { name },
      spec: { source: { sandboxName: source } },
    },
  });

const createSandbox = (name: string, spec: Record<string, unknown>) =>
  objects.createNamespacedCustomObject({
    ...sandboxes,
    namespace: ns.name,
    body: {
      apiVersion: API_VERSION,
      kind: SANDBOX_KIND,
      metadata: { name },
      spec: { image: "busybox", lifetime: { ttlSeconds: 600 }, ...spec },
    },
  });

const getSnapshot = async (name: string): Promise<SandboxSnapshot | undefined> => {
  try {
    return (await objects.getNamespacedCustomObject({
      ...snapshots,
      namespace: ns.name,
      name,
    })) as SandboxSnapshot;
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
};

async function snapshotWith(name: string, phase: string, reason: string) {
  return eventually(
    async () => {
      const s = await getSnapshot(name);
      expect(s?.status?.phase, JSON.stringify(s?.status)).toBe(phase);
      expect(s?.status?.reason).toBe(reason);
      const ready = s?.status?.conditions?.find((c) => c.type === "Ready");
      expect(ready?.status).toBe("False");
      expect(ready?.reason).toBe(reason);
      return s!;
    },
    { timeout: 20_000 },
  );
}

async function eventReasons(name: string): Promise<string[]> {
  const list = await core.listNamespacedEvent({
    namespace: ns.name,
    fieldSelector: `involvedObject.name=${name},involvedObject.kind=${SNAPSHOT_KIND}`,
  });
  return list.items.map((e) => e.reason ?? "");
}

describe("the SandboxSnapshot controller (apiserver, no backend copies)", () => {
  it("waits for a source it has not seen, then judges it when it appears: NoWorkspace", async () => {
    await createSnapshot("early", "later");
    const waiting = await snapshotWith("early", "Pending", "SourceNotFound");
    expect(waiting.status?.message).toContain("later");
    expect(waiting.status?.observedGeneration).toBe(waiting.metadata.generation);
    await createSandbox("later", {});
    const failed = await snapshotWith("early", "Failed", "NoWorkspace");
    expect(failed.status?.message).toContain("spec.workspace");
    // Failed is final: nothing is retaken, no finalizer was ever added.
    expect(failed.metadata.finalizers ?? []).toEqual([]);
    await eventually(async () =>
      expect(await eventReasons("early")).toEqual(
        expect.arrayContaining(["SourceNotFound", "NoWorkspace"]),
      ),
    );
  });

  it("records a pod-backend source and waits for its workspace; its deletion is SourceNotFound", async () => {
    await createSandbox("agent-pod", {
      backend: "pod",
      workspace: { volume: { size: "1Gi" } },
    });
    const sbx = (await objects.getNamespacedCustomObject({
      ...sandboxes,
      namespace: ns.name,
      name: "agent-pod",
    })) as { metadata: { uid: string } };
    // What the Sandbox controller would report once it has named the PVC.
    await objects.patchNamespacedCustomObjectStatus(
      {
        ...sandboxes,
        namespace: ns.name,
        name: "agent-pod",
        body: { status: { backend: "pod", workspace: { name: "agent-pod-workspace" } } },
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    await createSnapshot("of-pod", "agent-pod");
    const pending = await eventually(
      async () => {
        const s = await getSnapshot("of-pod");
        expect(s?.status?.phase).toBe("Pending");
        expect(s?.status?.reason).toBe("Creating");
        // The PVC does not exist: PodSnapshots.take says it waits for it.
        expect(s?.status?.message).toContain("PVC");
        return s!;
      },
      { timeout: 20_000 },
    );
    expect(pending.status).toMatchObject({
      backend: "pod",
      sourceSandboxUid: sbx.metadata.uid,
      sourceWorkspace: "agent-pod-workspace",
    });
    // Pod backend: the VolumeSnapshot is owned by the SandboxSnapshot, no finalizer.
    expect(pending.metadata.finalizers ?? []).toEqual([]);

    await objects.deleteNamespacedCustomObject({
      ...sandboxes,
      namespace: ns.name,
      name: "agent-pod",
    });
    const gone = await snapshotWith("of-pod", "Failed", "SourceNotFound");
    expect(gone.status?.message).toContain("agent-pod");

    // Deleting it goes at once (nothing of the backend's to remove first).
    await objects.deleteNamespacedCustomObject({
      ...snapshots,
      namespace: ns.name,
      name: "of-pod",
    });
    await eventually(async () => expect(await getSnapshot("of-pod")).toBeUndefined());
  });

  it("a docker-backend source on an operator without the docker backend: SnapshotUnsupported", async () => {
    await createSandbox("agent-docker", { backend: "docker", workspace: {} });
    await createSnapshot("of-docker", "agent-docker");
    const s = await snapshotWith("of-docker", "Failed", "SnapshotUnsupported");
    expect(s.status?.message).toContain("docker");
    expect(s.metadata.finalizers ?? []).toEqual([]);
  });
});
