// Storage on the real node (test/support/node/storage.ts). The local-path
// provisioner: a PVC of the default class waits for its first Pod, then binds
// to a directory on the node; what one Pod writes the next Pod that mounts the
// claim reads back byte for byte; deleting the claim deletes the volume and its
// directory. The CSI hostpath driver with external-snapshotter: a
// VolumeSnapshot of a claim restores into a new claim byte for byte, as it was
// when taken.
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";
import {
  CSI_CLASS,
  CSI_DRIVER,
  CSI_SNAPSHOT_CLASS,
  LOCAL_PATH_CLASS,
  LOCAL_PATH_PROVISIONER,
  localPathRoot,
} from "../support/node/index.js";
import { barePod, kubectl, waitPod } from "../support/node/pods.js";

const kc = kubeConfig();
const core = kc.makeApiClient(k8s.CoreV1Api);
const storage = kc.makeApiClient(k8s.StorageV1Api);
const objects = kc.makeApiClient(k8s.CustomObjectsApi);
let ns: Awaited<ReturnType<typeof testNamespace>>;

beforeAll(async () => {
  ns = await testNamespace(kc, "storage");
});
afterAll(async () => {
  await ns?.delete();
});

const withClaim = (claim: string): Partial<k8s.V1PodSpec> => ({
  volumes: [{ name: "data", persistentVolumeClaim: { claimName: claim } }],
});
function mounting(pod: k8s.V1Pod): k8s.V1Pod {
  pod.spec!.containers[0]!.volumeMounts = [{ name: "data", mountPath: "/data" }];
  return pod;
}

describe("the node's local-path storage", () => {
  it("is the default StorageClass, binding on first use", async () => {
    const sc = await storage.readStorageClass({ name: LOCAL_PATH_CLASS });
    expect(sc.provisioner).toBe(LOCAL_PATH_PROVISIONER);
    expect(sc.volumeBindingMode).toBe("WaitForFirstConsumer");
    expect(sc.metadata?.annotations?.["storageclass.kubernetes.io/is-default-class"]).toBe("true");
  });

  it("binds a claim to a node directory; data written by one Pod is read by the next", async () => {
    // No storageClassName: the default class fills it in.
    await core.createNamespacedPersistentVolumeClaim({
      namespace: ns.name,
      body: {
        metadata: { name: "work" },
        spec: {
          accessModes: ["ReadWriteOnce"],
          resources: { requests: { storage: "64Mi" } },
        },
      },
    });
    const pending = await core.readNamespacedPersistentVolumeClaim({
      name: "work",
      namespace: ns.name,
    });
    expect(pending.spec?.storageClassName).toBe(LOCAL_PATH_CLASS);
    expect(pending.status?.phase).toBe("Pending");

    await core.createNamespacedPod({
      namespace: ns.name,
      body: mounting(
        barePod(
          "writer",
          [
            "sh",
            "-c",
            "head -c 1048576 /dev/urandom > /data/blob && sha256sum /data/blob && id -u",
          ],
          withClaim("work"),
        ),
      ),
    });
    await waitPod(
      core,
      ns.name,
      "writer",
      (p) => expect(p.status?.phase).toBe("Succeeded"),
      90_000,
    );
    const wrote = (await kubectl(["logs", "-n", ns.name, "writer"])).stdout.split("\n");
    const sum = wrote[0]!.split(" ")[0]!;
    expect(sum).toMatch(/^[0-9a-f]{64}$/);
    expect(wrote[1]).toBe("1000");

    const claim = await core.readNamespacedPersistentVolumeClaim({
      name: "work",
      namespace: ns.name,
    });
    expect(claim.status?.phase).toBe("Bound");
    const pv = await core.readPersistentVolume({ name: claim.spec!.volumeName! });
    const dir = pv.spec?.local?.path ?? "";
    // The directory is the node's, on this host: the bytes are there.
    expect(dir.startsWith(`${localPathRoot(inject("nodeDir"))}/`)).toBe(true);
    expect(
      createHash("sha256")
        .update(readFileSync(`${dir}/blob`))
        .digest("hex"),
    ).toBe(sum);
    expect(
      pv.spec?.nodeAffinity?.required?.nodeSelectorTerms?.[0]?.matchExpressions?.[0]?.values,
    ).toEqual([inject("nodeName")]);

    await core.createNamespacedPod({
      namespace: ns.name,
      body: mounting(barePod("reader", ["sha256sum", "/data/blob"], withClaim("work"))),
    });
    await waitPod(
      core,
      ns.name,
      "reader",
      (p) => expect(p.status?.phase).toBe("Succeeded"),
      90_000,
    );
    expect((await kubectl(["logs", "-n", ns.name, "reader"])).stdout).toBe(`${sum}  /data/blob\n`);

    // Deleting the claim (once no Pod holds it) deletes the volume and its directory.
    for (const name of ["writer", "reader"])
      await core.deleteNamespacedPod({ name, namespace: ns.name, gracePeriodSeconds: 0 });
    await core.deleteNamespacedPersistentVolumeClaim({ name: "work", namespace: ns.name });
    await eventually(
      async () => {
        const gone = await core.readPersistentVolume({ name: pv.metadata!.name! }).then(
          () => false,
          (e: { code?: number }) => e.code === 404,
        );
        expect(gone).toBe(true);
        expect(existsSync(dir)).toBe(false);
      },
      { timeout: 60_000, interval: 250 },
    );
  });

  it("refuses a claim it cannot honour (ReadWriteMany on a node directory), saying why", async () => {
    await core.createNamespacedPersistentVolumeClaim({
      namespace: ns.name,
      body: {
        metadata: { name: "shared" },
        spec: { accessModes: ["ReadWriteMany"], resources: { requests: { storage: "1Mi" } } },
      },
    });
    await core.createNamespacedPod({
      namespace: ns.name,
      body: mounting(barePod("waits", ["true"], withClaim("shared"))),
    });
    await eventually(
      async () => {
        const events = await core.listNamespacedEvent({
          namespace: ns.name,
          fieldSelector: "involvedObject.name=shared",
        });
        expect(events.items.map((e) => `${e.reason}: ${e.message}`).join("\n")).toMatch(
          /ProvisioningFailed: .*access mode ReadWriteMany/,
        );
      },
      { timeout: 60_000, interval: 500 },
    );
    const claim = await core.readNamespacedPersistentVolumeClaim({
      name: "shared",
      namespace: ns.name,
    });
    expect(claim.status?.phase).toBe("Pending");
  });
});

/** Every file under /data with its digest, sorted: equal listings are equal trees. */
const MANIFEST =
  "cd /data && find . -type f -exec sha256sum {} + | sort -k2 && find . | sort | md5sum";

async function runToEnd(name: string, command: string, claim: string): Promise<string> {
  await core.createNamespacedPod({
    namespace: ns.name,
    body: mounting(barePod(name, ["sh", "-c", command], withClaim(claim))),
  });
  await waitPod(core, ns.name, name, (p) => expect(p.status?.phase).toBe("Succeeded"), 90_000);
  return (await kubectl(["logs", "-n", ns.name, name])).stdout;
}

// Reported as skipped (not passed) when the node runs without CSI (SANDBOX_NODE_CSI=0).
describe.skipIf(!inject("nodeCsi"))("the node's CSI hostpath driver with VolumeSnapshots", () => {
  it("registers with the kubelet", async () => {
    await eventually(
      async () => {
        const csiNode = await storage.readCSINode({ name: inject("nodeName") });
        expect(csiNode.spec.drivers?.map((d) => d.name)).toContain(CSI_DRIVER);
      },
      { timeout: 30_000, interval: 250 },
    );
  });

  it("restores a snapshot into a new claim byte for byte, as it was when taken", async () => {
    const claim = (name: string, dataSource?: k8s.V1TypedLocalObjectReference) =>
      core.createNamespacedPersistentVolumeClaim({
        namespace: ns.name,
        body: {
          metadata: { name },
          spec: {
            storageClassName: CSI_CLASS,
            accessModes: ["ReadWriteOnce"],
            resources: { requests: { storage: "64Mi" } },
            dataSource,
          },
        },
      });
    await claim("source");
    const before = await runToEnd(
      "fill",
      "head -c 4194304 /dev/urandom > /data/blob && mkdir -p /data/d/e && echo x > /data/d/e/f && " +
        `ln -s d/e/f /data/link && ${MANIFEST}`,
      "source",
    );
    expect(before).toMatch(/\.\/blob\n/);

    await objects.createNamespacedCustomObject({
      group: "snapshot.storage.k8s.io",
      version: "v1",
      namespace: ns.name,
      plural: "volumesnapshots",
      body: {
        apiVersion: "snapshot.storage.k8s.io/v1",
        kind: "VolumeSnapshot",
        metadata: { name: "snap" },
        spec: {
          volumeSnapshotClassName: CSI_SNAPSHOT_CLASS,
          source: { persistentVolumeClaimName: "source" },
        },
      },
    });
    const snap = await eventually(
      async () => {
        const vs = (await objects.getNamespacedCustomObject({
          group: "snapshot.storage.k8s.io",
          version: "v1",
          namespace: ns.name,
          plural: "volumesnapshots",
          name: "snap",
        })) as { status?: { readyToUse?: boolean; restoreSize?: string; error?: unknown } };
        expect(vs.status?.readyToUse, JSON.stringify(vs.status)).toBe(true);
        return vs;
      },
      { timeout: 60_000, interval: 250 },
    );
    expect(snap.status?.restoreSize).toBeDefined();

    // Changed after the snapshot: the restore must not see it.
    await runToEnd("change", "echo later >> /data/blob && rm /data/d/e/f", "source");

    await claim("restored", {
      apiGroup: "snapshot.storage.k8s.io",
      kind: "VolumeSnapshot",
      name: "snap",
    });
    expect(await runToEnd("check", MANIFEST, "restored")).toBe(before);
    expect(await runToEnd("check-link", "readlink /data/link", "restored")).toBe("d/e/f\n");
  });
});
