// Snapshots of pod-backend workspaces on the real node. The SandboxSnapshot
// controller is not in this branch: the test plays it, calling the pod
// backend's PodSnapshots.take (what the controller calls) and writing what it
// returns into the SandboxSnapshot's status. A workspace of the local-path
// class cannot be snapshotted (SnapshotUnsupported, naming the class); one of
// the node's CSI hostpath class is, and a new Sandbox whose workspace starts
// from the snapshot reads it back byte for byte (sha256 of every file).
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { GROUP, SNAPSHOT_KIND, SNAPSHOT_PLURAL, VERSION } from "../../src/api/group.js";
import type { Sandbox } from "../../src/api/sandbox.js";
import { SandboxSpecSchema } from "../../src/api/sandbox-spec.js";
import { type PodSnapshotOutcome, PodSnapshots } from "../../src/backends/pod/snapshots.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { OPERATOR_IMAGE } from "../support/docker.js";
import { eventually } from "../support/eventually.js";
import { CSI_CLASS, LOCAL_PATH_CLASS } from "../support/node/index.js";
import { kubectl, NODE_SANDBOX_IMAGE, NODE_TEST_RESOURCES } from "../support/node/pods.js";
import { type RunningOperator, startOperator } from "../support/operator.js";
import { SandboxClient } from "../support/sandboxes.js";

const kc = kubeConfig();
const objects = kc.makeApiClient(k8s.CustomObjectsApi);
const snapshots = new PodSnapshots(kc);
let ns: Awaited<ReturnType<typeof testNamespace>>;
let sbx: SandboxClient;
let operator: RunningOperator;

beforeAll(async () => {
  ns = await testNamespace(kc, "wsnap");
  sbx = new SandboxClient(kc, ns.name);
  operator = await startOperator({
    namespace: ns.name,
    user: "operator-2",
    egressImage: OPERATOR_IMAGE,
  });
});
afterAll(async () => {
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

async function sandboxOf(name: string): Promise<Sandbox> {
  const s = (await sbx.get(name))!;
  return { ...s, spec: SandboxSpecSchema.parse(s.spec) } as Sandbox;
}

async function createSnapshot(name: string, source: string) {
  return (await objects.createNamespacedCustomObject({
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
  })) as { metadata: { name: string; uid: string } };
}

describe("pod-backend snapshots (real node)", () => {
  it("a local-path workspace cannot be snapshotted: SnapshotUnsupported, naming the class", async () => {
    await sbx.create("plain", {
      ...run("echo x > /workspace/x"),
      workspace: { volume: { storageClassName: LOCAL_PATH_CLASS, size: "16Mi" } },
    });
    await sbx.waitFor("plain", (s) => expect(s.status?.phase).toBe("Succeeded"), 120_000);
    const snap = await createSnapshot("plain-snap", "plain");
    const outcome = await snapshots.take(
      { namespace: ns.name, name: "plain-snap", uid: snap.metadata.uid },
      await sandboxOf("plain"),
    );
    expect(outcome).toMatchObject({ phase: "Failed", reason: "SnapshotUnsupported" });
    expect((outcome as { message: string }).message).toContain(LOCAL_PATH_CLASS);
  });

  it.skipIf(!inject("nodeCsi"))(
    "a CSI workspace's snapshot restores into a new sandbox byte for byte, as it was when taken",
    async () => {
      await sbx.create("src", {
        ...run(
          "head -c 8388608 /dev/urandom > /workspace/blob && mkdir -p /workspace/d && echo hi > /workspace/d/f && " +
            `${MANIFEST}; sleep 3600`,
        ),
        workspace: { volume: { storageClassName: CSI_CLASS, size: "64Mi" } },
      });
      await sbx.waitFor("src", (s) => expect(s.status?.phase).toBe("Running"), 120_000);
      const before = await eventually(async () => {
        const out = await logs("src");
        expect(out).toMatch(/-\n$/);
        return out;
      });
      const snap = await createSnapshot("snap", "src");
      const ref = { namespace: ns.name, name: "snap", uid: snap.metadata.uid };
      const ready = await eventually(
        async () => {
          const o: PodSnapshotOutcome = await snapshots.take(ref, await sandboxOf("src"));
          expect(o.phase, JSON.stringify(o)).toBe("Ready");
          return o as Extract<PodSnapshotOutcome, { phase: "Ready" }>;
        },
        { timeout: 60_000, interval: 500 },
      );
      // The controller's part: the snapshot's status.
      await objects.patchNamespacedCustomObjectStatus(
        {
          group: GROUP,
          version: VERSION,
          namespace: ns.name,
          plural: SNAPSHOT_PLURAL,
          name: "snap",
          body: {
            status: {
              phase: "Ready",
              backend: "pod",
              handle: ready.handle,
              sourceWorkspace: ready.sourceWorkspace,
              sizeBytes: ready.sizeBytes,
            },
          },
        },
        k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
      );
      // Changed after the snapshot: the restore must not see it.
      await kubectl([
        "exec",
        "-n",
        ns.name,
        "src",
        "-c",
        "sandbox",
        "--",
        "sh",
        "-c",
        "echo later >> /workspace/blob",
      ]);

      await sbx.create("restored", {
        ...run(MANIFEST),
        workspace: { fromSnapshot: { name: "snap" } },
      });
      const s = await sbx.waitFor(
        "restored",
        (s) => expect(s.status?.phase).toBe("Succeeded"),
        120_000,
      );
      expect(s.status?.workspace).toMatchObject({
        name: "restored-workspace",
        fromSnapshot: "snap",
      });
      expect(await logs("restored")).toBe(before);
    },
  );
});
