// Idle auto-suspend and resume on use on the pod backend, on the real node
// (PVC workspaces of the harness's local-path class): an unused sandbox with
// a short idleTimeout is suspended by the operator (Pod gone, PVC kept, the
// idle mark), costs no API write while it sleeps, and an SDK call through
// pods/portforward wakes it and finds the workspace as it was. A controller
// restart in the middle of a suspension (the Pod still terminating) and in
// the middle of a resume (the new Pod created, not yet scheduled) loses
// nothing: the next controller finishes the job without a second Pod.
//
// The middle is made to last, not raced: a finalizer of the test's holds the
// old Pod in Terminating, and a cordoned node holds the new one Pending.
import * as k8s from "@kubernetes/client-node";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { Sandbox } from "../../packages/sdk/src/index.js";
import { ConditionReason, ConditionType } from "../../src/api/conditions.js";
import { IdleMark } from "../../src/api/idle.js";
import { POD_STOP_GRACE_SECONDS } from "../../src/backends/pod/pod.js";
import { describeWrites, writesBy } from "../support/audit.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { OPERATOR_IMAGE } from "../support/docker.js";
import { eventually } from "../support/eventually.js";
import { idleSuspend, suspendedForIdleness } from "../support/idle.js";
import { kubectl, NODE_SANDBOX_IMAGE, NODE_TEST_RESOURCES } from "../support/node/pods.js";
import { type RunningOperator, startOperator } from "../support/operator.js";
import { condition, isReady, SandboxClient } from "../support/sandboxes.js";

const kc = kubeConfig();
const core = kc.makeApiClient(k8s.CoreV1Api);
const OPERATOR_USER = "operator-1";
/** The API's minimum: the shortest wait for an idle suspension. */
const IDLE = "10s";
const HOLD = "test.sandboxing.dev/hold";
let ns: Awaited<ReturnType<typeof testNamespace>>;
let sbx: SandboxClient;
let operator: RunningOperator | undefined;
const boxes: Sandbox[] = [];

const startController = async () => {
  operator = await startOperator({
    namespace: ns.name,
    user: OPERATOR_USER,
    egressImage: OPERATOR_IMAGE,
  });
};
const stopController = async () => {
  await operator?.stop();
  operator = undefined;
};

beforeAll(async () => {
  ns = await testNamespace(kc, "idlepod");
  sbx = new SandboxClient(kc, ns.name);
  await startController();
});
afterEach(async () => {
  // Whatever a failed test left: the node schedulable, no Pod held.
  await kubectl(["uncordon", inject("nodeName")]);
  for (const pod of (await core.listNamespacedPod({ namespace: ns.name })).items) {
    if (pod.metadata?.finalizers?.includes(HOLD)) await release(pod.metadata.name!);
  }
});
afterAll(async () => {
  for (const b of boxes) b.close();
  await stopController();
  await ns?.delete();
});

const spec = (over: Record<string, unknown> = {}) => ({
  image: NODE_SANDBOX_IMAGE,
  command: ["sleep", "3600"],
  resources: NODE_TEST_RESOURCES,
  workspace: { volume: { size: "64Mi" } },
  ...over,
});
const sdk = (name: string) => ({ kubeconfig: kc, namespace: ns.name, name });
const claim = (name: string) =>
  core.readNamespacedPersistentVolumeClaim({ name, namespace: ns.name }).catch(() => undefined);

/** 1 MiB of random bytes in the workspace; returns its digest line. */
const WRITE = "head -c 1048576 /dev/urandom > /workspace/blob && sha256sum /workspace/blob";
const CHECK = "sha256sum /workspace/blob";

async function hold(pod: string): Promise<void> {
  await core.patchNamespacedPod(
    { name: pod, namespace: ns.name, body: { metadata: { finalizers: [HOLD] } } },
    k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
  );
}
async function release(pod: string): Promise<void> {
  await core
    .patchNamespacedPod(
      { name: pod, namespace: ns.name, body: { metadata: { finalizers: null } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    )
    .catch(() => undefined);
}

describe("idle auto-suspend on the pod backend (real node)", () => {
  it("suspends an unused sandbox (Pod gone, PVC kept), writes nothing while it sleeps, and an SDK call resumes it with its data", async () => {
    const box = await Sandbox.create(spec({ idleTimeout: IDLE }), sdk("dozer"));
    boxes.push(box);
    const wrote = await box.exec(["sh", "-c", WRITE]);
    expect(wrote.exitCode).toBe(0);
    const firstPod = await sbx.pod("dozer");
    expect(firstPod?.metadata?.uid).toBeDefined();

    // Nobody calls it: the operator suspends it (its clock read through pods/portforward).
    const asleep = await sbx.waitFor("dozer", suspendedForIdleness, 90_000);
    await eventually(async () => expect(await sbx.pod("dozer")).toBeUndefined(), {
      timeout: 60_000,
    });
    const pvc = await claim("dozer-workspace");
    expect(pvc?.status?.phase).toBe("Bound");
    expect(pvc?.metadata?.deletionTimestamp).toBeUndefined();
    expect(asleep.status?.workspace?.name).toBe("dozer-workspace");

    // Asleep, it costs nothing: no API write by the controller over two idle
    // periods, a controller restart included (the new one's first look at it).
    const quietFrom = await writesBy(OPERATOR_USER, ns.name);
    const rv = (await sbx.get("dozer"))?.metadata.resourceVersion;
    const pvcRv = (await claim("dozer-workspace"))?.metadata?.resourceVersion;
    await new Promise((r) => setTimeout(r, 10_000));
    await stopController();
    await startController();
    await new Promise((r) => setTimeout(r, 12_000));
    const quiet = (await writesBy(OPERATOR_USER, ns.name)) - quietFrom;
    expect(quiet, await describeWrites(OPERATOR_USER, ns.name)).toBe(0);
    expect((await sbx.get("dozer"))?.metadata.resourceVersion).toBe(rv);
    expect((await claim("dozer-workspace"))?.metadata?.resourceVersion).toBe(pvcRv);
    expect(await sbx.pod("dozer")).toBeUndefined();

    // The same Sandbox object calls again: it resumes it, waits, and the call sees the data.
    const checked = await box.exec(["sh", "-c", CHECK]);
    expect(checked.exitCode).toBe(0);
    expect(checked.stdout).toBe(wrote.stdout);
    const awake = await sbx.get("dozer");
    isReady(awake!);
    expect(awake?.spec.suspended).toBe(false);
    expect(awake?.metadata.annotations?.[IdleMark.annotation]).toBeUndefined();
    expect(condition(awake!, ConditionType.Suspended)?.reason).toBe(ConditionReason.Resumed);
    const pod = await sbx.pod("dozer");
    expect(pod?.metadata?.uid).not.toBe(firstPod?.metadata?.uid);
    expect(pod?.spec?.volumes?.find((v) => v.persistentVolumeClaim)?.persistentVolumeClaim).toEqual(
      { claimName: "dozer-workspace" },
    );
  }, 300_000);

  it("a controller restart in the middle of a suspension (Pod still terminating) loses nothing", async () => {
    const box = await Sandbox.create(spec({ idleTimeout: "1h" }), sdk("halfway"));
    boxes.push(box);
    const wrote = await box.exec(["sh", "-c", WRITE]);
    const pod = await sbx.pod("halfway");
    await hold("halfway");
    await idleSuspend(sbx, "halfway");
    // The controller has asked for the Pod's deletion; the Pod cannot go yet.
    const terminating = await eventually(
      async () => {
        const p = await sbx.pod("halfway");
        expect(p?.metadata?.deletionTimestamp).toBeDefined();
        return p!;
      },
      { timeout: 30_000 },
    );
    // Not a force deletion (grace 0): the kubelet removes the Pod only once it has stopped.
    expect(terminating.metadata?.deletionGracePeriodSeconds).toBe(POD_STOP_GRACE_SECONDS);
    const midway = await sbx.waitFor("halfway", (s) =>
      expect(condition(s, ConditionType.Suspended)?.reason).toBe(ConditionReason.Suspending),
    );
    expect(midway.status?.phase).not.toBe("Suspended");
    await stopController();
    await release("halfway");
    await eventually(async () => expect(await sbx.pod("halfway")).toBeUndefined(), {
      timeout: 60_000,
    });
    await startController();
    const s = await sbx.waitFor("halfway", suspendedForIdleness, 60_000);
    expect(s.status?.workspace?.name).toBe("halfway-workspace");
    expect((await claim("halfway-workspace"))?.status?.phase).toBe("Bound");
    expect(await sbx.pod("halfway")).toBeUndefined();
    // And back, with the data.
    const checked = await box.exec(["sh", "-c", CHECK]);
    expect(checked.stdout).toBe(wrote.stdout);
    expect((await sbx.pod("halfway"))?.metadata?.uid).not.toBe(pod?.metadata?.uid);
  }, 300_000);

  it("a controller restart in the middle of a resume (new Pod created, not yet running) makes no second Pod", async () => {
    const box = await Sandbox.create(spec({ idleTimeout: "1h" }), sdk("wakeful"));
    boxes.push(box);
    const wrote = await box.exec(["sh", "-c", WRITE]);
    await idleSuspend(sbx, "wakeful");
    await sbx.waitFor("wakeful", suspendedForIdleness, 60_000);
    await eventually(async () => expect(await sbx.pod("wakeful")).toBeUndefined(), {
      timeout: 60_000,
    });

    const node = inject("nodeName");
    expect((await kubectl(["cordon", node])).code).toBe(0);
    await sbx.patchSpec("wakeful", { suspended: false });
    // The controller created the new Pod; the scheduler cannot place it.
    const pending = await eventually(
      async () => {
        const p = await sbx.pod("wakeful");
        expect(p?.metadata?.uid).toBeDefined();
        expect(p?.spec?.nodeName).toBeUndefined();
        return p!;
      },
      { timeout: 30_000 },
    );
    await stopController();
    expect((await kubectl(["uncordon", node])).code).toBe(0);
    await startController();
    const s = await sbx.waitFor("wakeful", isReady, 120_000);
    expect(s.spec.suspended).toBe(false);
    const pods = (
      await core.listNamespacedPod({
        namespace: ns.name,
        labelSelector: "sandboxing.dev/sandbox=wakeful",
      })
    ).items;
    expect(pods.map((p) => p.metadata?.uid)).toEqual([pending.metadata?.uid]);
    const checked = await box.exec(["sh", "-c", CHECK]);
    expect(checked.stdout).toBe(wrote.stdout);
  }, 300_000);
});
