// A pod-backend Sandbox whose workspace starts from a SandboxSnapshot that is
// not ready waits (SnapshotNotReady, no PVC, no Pod) and is not stalled, so
// only the snapshot settling can end the wait: the Sandbox controller watches
// SandboxSnapshots on either backend and reconciles the sandboxes waiting for
// one as it becomes Ready. No snapshot controller runs here: the test writes
// the status it would.
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConditionReason, ConditionType } from "../../src/api/conditions.js";
import {
  API_VERSION,
  GROUP,
  SNAPSHOT_KIND,
  SNAPSHOT_PLURAL,
  VERSION,
} from "../../src/api/group.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";
import { type RunningOperator, startOperator } from "../support/operator.js";
import { condition, SandboxClient } from "../support/sandboxes.js";

const kc = kubeConfig();
const objects = kc.makeApiClient(k8s.CustomObjectsApi);
const core = kc.makeApiClient(k8s.CoreV1Api);
let ns: Awaited<ReturnType<typeof testNamespace>>;
let sbx: SandboxClient;
let operator: RunningOperator;

beforeAll(async () => {
  ns = await testNamespace(kc, "from-snap");
  sbx = new SandboxClient(kc, ns.name);
  operator = await startOperator({ namespace: ns.name, user: "operator-0" });
});
afterAll(async () => {
  await operator?.stop();
  await ns?.delete();
});

const claim = (name: string) =>
  core.readNamespacedPersistentVolumeClaim({ name, namespace: ns.name }).catch((err) => {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  });

describe("pod backend: a workspace from a snapshot", () => {
  it("waits while the snapshot is not ready, and goes on as soon as it is", async () => {
    await objects.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: SNAPSHOT_PLURAL,
      namespace: ns.name,
      body: {
        apiVersion: API_VERSION,
        kind: SNAPSHOT_KIND,
        metadata: { name: "nightly" },
        spec: { source: { sandboxName: "elsewhere" } },
      },
    });
    // An hour's lifetime: the expiry requeue cannot be what ends the wait.
    await sbx.create("restored", {
      image: "busybox",
      command: ["sleep", "3600"],
      workspace: { fromSnapshot: { name: "nightly" } },
    });
    const waiting = await sbx.waitFor("restored", (s) =>
      expect(condition(s, ConditionType.WorkspaceReady)).toMatchObject({
        status: "False",
        reason: ConditionReason.SnapshotNotReady,
      }),
    );
    expect(waiting.status?.phase).toBe("Pending");
    // Not stalled: waited for, never failed by the stall timeout.
    expect(condition(waiting, ConditionType.Stalled)?.status ?? "False").toBe("False");
    expect(await claim("restored-workspace")).toBeUndefined();
    expect(await sbx.pod("restored")).toBeUndefined();

    await objects.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        plural: SNAPSHOT_PLURAL,
        namespace: ns.name,
        name: "nightly",
        body: { status: { phase: "Ready", backend: "pod", handle: "sbx-nightly" } },
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    const began = Date.now();
    const pvc = await eventually(
      async () => {
        const c = await claim("restored-workspace");
        expect(c).toBeDefined();
        return c!;
      },
      { timeout: 10_000, interval: 50 },
    );
    expect(Date.now() - began).toBeLessThan(10_000);
    expect(pvc.spec?.dataSource).toEqual({
      apiGroup: "snapshot.storage.k8s.io",
      kind: "VolumeSnapshot",
      name: "sbx-nightly",
    });
  });
});
