// Repair of what hides from the controller's caches, against the real control
// plane. The caches hold only objects labelled as the operator's, so an object
// stripped of its labels drops out of view; it must still be taken back (labels
// and spec), whichever comes first, and must not outlive the sandbox's lifetime.
// Also: a create the apiserver refuses leaves a condition and does not delay
// expiry; a status edited by hand is corrected and cannot postpone expiry.
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConditionReason, ConditionType } from "../../src/api/conditions.js";
import { GROUP, SANDBOX_PLURAL, VERSION } from "../../src/api/group.js";
import { Labels, MANAGED_BY } from "../../src/api/labels.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";
import { type RunningOperator, startOperator } from "../support/operator.js";
import { condition, isReady, notFound, SandboxClient } from "../support/sandboxes.js";

const kc = kubeConfig();
const objects = kc.makeApiClient(k8s.CustomObjectsApi);
const merge = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);
const strategic = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.StrategicMergePatch);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Three edits an attacker or a careless hand can make: labels off, spec opened, or both in one write. */
const ORDERS = ["label first", "spec first", "both at once"] as const;
type Order = (typeof ORDERS)[number];

const stripLabels = { metadata: { labels: null } };

async function edit(
  order: Order,
  patch: (body: object, opts: k8s.ConfigurationOptions) => Promise<unknown>,
  specEdit: object,
  opts = merge,
) {
  if (order === "both at once") return patch({ ...stripLabels, ...specEdit }, opts);
  const [first, second] =
    order === "label first" ? [stripLabels, specEdit] : [specEdit, stripLabels];
  await patch(first, order === "label first" ? merge : opts);
  // The controller may be replacing the object between the two edits (a Pod is
  // recreated for a new image): the second lands on whichever one has the name.
  await eventually(() => patch(second, order === "label first" ? opts : merge), {
    timeout: 5000,
  });
}

const ours = (meta: k8s.V1ObjectMeta | undefined) =>
  expect(meta?.labels?.[Labels.managedBy], JSON.stringify(meta?.labels)).toBe(MANAGED_BY);

describe("objects stripped of their labels", () => {
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  let sbx: SandboxClient;
  let operator: RunningOperator;

  beforeAll(async () => {
    ns = await testNamespace(kc, "repair");
    sbx = new SandboxClient(kc, ns.name);
    operator = await startOperator({ namespace: ns.name, user: "operator-1" });
  });
  afterAll(async () => {
    await operator?.stop();
    await ns?.delete();
  });

  it("takes a Pod back in place when its managed-by label, or every label, is removed", async () => {
    for (const [name, labels] of [
      ["unmanaged", { [Labels.managedBy]: null }],
      ["unlabelled", null],
    ] as const) {
      await sbx.create(name, { image: "busybox" });
      await sbx.waitFor(name, isReady);
      const before = (await sbx.pod(name))!;
      await sbx.core.patchNamespacedPod(
        { name, namespace: ns.name, body: { metadata: { labels } } },
        merge,
      );
      const after = await eventually(async () => {
        const pod = (await sbx.pod(name))!;
        ours(pod.metadata);
        expect(pod.metadata?.labels?.[Labels.sandboxUid]).toBe(
          before.metadata?.labels?.[Labels.sandboxUid],
        );
        return pod;
      });
      // Labels are mutable: the workload keeps running.
      expect(after.metadata?.uid).toBe(before.metadata?.uid);
      await sbx.waitFor(name, isReady);
      await eventually(async () =>
        expect((await sbx.events(name)).map((e) => e.reason)).toContain("PodRestored"),
      );
    }
  });

  it.each(ORDERS)("takes a Pod back when labels and image are edited, %s", async (order) => {
    const name = `pod-${order.split(" ")[0]}`;
    await sbx.create(name, { image: "busybox" });
    await sbx.waitFor(name, isReady);
    const before = (await sbx.pod(name))!;
    await edit(
      order,
      (body, opts) => sbx.core.patchNamespacedPod({ name, namespace: ns.name, body }, opts),
      { spec: { containers: [{ name: "sandbox", image: "evil:latest" }] } },
      strategic,
    );
    await eventually(async () => {
      const pod = (await sbx.pod(name))!;
      expect(pod.metadata?.uid).not.toBe(before.metadata?.uid);
      expect(pod.spec?.containers[0]?.image).toBe("busybox");
      ours(pod.metadata);
    });
    await sbx.waitFor(name, isReady);
  });

  it.each(ORDERS)("restores a NetworkPolicy opened to all and unlabelled, %s", async (order) => {
    const name = `np-${order.split(" ")[0]}`;
    await sbx.create(name, { image: "busybox" });
    await sbx.waitFor(name, isReady);
    await edit(
      order,
      (body, opts) =>
        sbx.networking.patchNamespacedNetworkPolicy({ name, namespace: ns.name, body }, opts),
      { spec: { egress: [{}], ingress: [{}] } },
    );
    await eventually(async () => {
      const np = await sbx.networking.readNamespacedNetworkPolicy({ name, namespace: ns.name });
      ours(np.metadata);
      expect(np.spec?.egress?.[0]?.ports?.[0]?.port).toBe(53);
      expect(np.spec?.egress).toHaveLength(1);
      expect(np.spec?.ingress ?? []).toEqual([]); // stored without an empty list
    });
    await eventually(async () =>
      expect((await sbx.events(name)).map((e) => e.reason)).toContain("NetworkPolicyRestored"),
    );
  });

  it.each(ORDERS)("restores a Service's port and labels, %s", async (order) => {
    const name = `svc-${order.split(" ")[0]}`;
    await sbx.create(name, { image: "busybox", ports: [{ name: "http", port: 8080 }] });
    await sbx.waitFor(name, isReady);
    await edit(
      order,
      (body, opts) => sbx.core.patchNamespacedService({ name, namespace: ns.name, body }, opts),
      { spec: { ports: [{ name: "http", port: 9999, targetPort: 9999, protocol: "TCP" }] } },
    );
    await eventually(async () => {
      const svc = await sbx.core.readNamespacedService({ name, namespace: ns.name });
      ours(svc.metadata);
      expect(svc.spec?.ports?.map((p) => p.port)).toEqual([8080]);
    });
  });

  it("reports an object of its name that belongs to no sandbox, and leaves it alone", async () => {
    await sbx.core.createNamespacedService({
      namespace: ns.name,
      body: {
        metadata: { name: "taken" },
        spec: { ports: [{ name: "x", port: 1 }], selector: { app: "someone-else" } },
      },
    });
    await sbx.create("taken", { image: "busybox", ports: [{ name: "http", port: 80 }] });
    const s = await sbx.waitFor("taken", (s) =>
      expect(condition(s, ConditionType.Ready)?.reason).toBe(ConditionReason.NameTaken),
    );
    expect(condition(s, ConditionType.Ready)?.message).toContain("Service named taken");
    expect(condition(s, ConditionType.Stalled)?.status).toBe("True");
    const svc = await sbx.core.readNamespacedService({ name: "taken", namespace: ns.name });
    expect(svc.spec?.selector).toEqual({ app: "someone-else" });
    expect(await sbx.pod("taken")).toBeUndefined();
  });

  it("corrects a phase written by hand", async () => {
    await sbx.create("handphase", { image: "busybox" });
    await sbx.waitFor("handphase", isReady);
    await objects.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        plural: SANDBOX_PLURAL,
        namespace: ns.name,
        name: "handphase",
        body: { status: { phase: "Succeeded", exitCode: 0, finishedAt: "2024-01-01t00:00:00z" } },
      },
      merge,
    );
    const s = await sbx.waitFor("handphase", (s) => {
      expect(s.status?.phase).toBe("Running");
      expect(s.status?.finishedAt).toBeUndefined();
      expect(s.status?.exitCode).toBeUndefined();
    });
    isReady(s);
  });

  it("expires on time whatever was written into the status by hand", async () => {
    const created = await sbx.create("handstatus", {
      image: "busybox",
      lifetime: { ttlSeconds: 6 },
    });
    await sbx.waitFor("handstatus", isReady);
    await objects.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        plural: SANDBOX_PLURAL,
        namespace: ns.name,
        name: "handstatus",
        body: {
          status: {
            phase: "Expired",
            finishedAt: "2024-01-01t00:00:00z",
            expiresAt: "2099-01-01T00:00:00Z",
            observedGeneration: Number.MAX_SAFE_INTEGER,
          },
        },
      },
      merge,
    );
    await sbx.waitGone("handstatus", 15_000);
    const expiresAt = Date.parse(created.metadata.creationTimestamp as unknown as string) + 6000;
    expect(Date.now() - expiresAt).toBeLessThan(3000);
  });
});

describe("at expiry", () => {
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  let sbx: SandboxClient;

  beforeAll(async () => {
    ns = await testNamespace(kc, "expiry");
    sbx = new SandboxClient(kc, ns.name);
  });
  afterAll(async () => {
    await ns?.delete();
  });

  it("removes a Retain sandbox's Pod, NetworkPolicy and Service stripped of their labels while the controller was down", async () => {
    let operator = await startOperator({ namespace: ns.name, user: "operator-2" });
    const ttl = 8;
    const created = await sbx.create("kept", {
      image: "busybox",
      ports: [{ name: "http", port: 80 }],
      lifetime: { ttlSeconds: ttl, onExpire: "Retain" },
    });
    // And one that lives on: taken back after the restart, not removed.
    await sbx.create("alive", { image: "busybox" });
    await sbx.waitFor("kept", isReady);
    await sbx.waitFor("alive", isReady);
    await operator.stop();

    const name = "kept";
    const namespace = ns.name;
    await sbx.core.patchNamespacedPod({ name, namespace, body: stripLabels }, merge);
    await sbx.core.patchNamespacedPod({ name: "alive", namespace, body: stripLabels }, merge);
    await sbx.networking.patchNamespacedNetworkPolicy(
      { name, namespace, body: stripLabels },
      merge,
    );
    await sbx.core.patchNamespacedService({ name, namespace, body: stripLabels }, merge);

    const expiresAt =
      Date.parse(created.metadata.creationTimestamp as unknown as string) + ttl * 1000;
    await sleep(Math.max(0, expiresAt - Date.now()) + 1000);
    operator = await startOperator({ namespace: ns.name, user: "operator-2" });
    try {
      const s = await sbx.waitFor(name, (s) => expect(s.status?.phase).toBe("Expired"));
      expect(condition(s, ConditionType.Expired)?.status).toBe("True");
      await eventually(async () => {
        expect(await sbx.pod(name)).toBeUndefined();
        const np = await sbx.networking
          .readNamespacedNetworkPolicy({ name, namespace })
          .catch(notFound);
        expect(np).toBeUndefined();
        const svc = await sbx.core.readNamespacedService({ name, namespace }).catch(notFound);
        expect(svc).toBeUndefined();
      });
      // The live one's Pod is taken back, not replaced.
      await eventually(async () => ours((await sbx.pod("alive"))?.metadata));
      await sbx.waitFor("alive", isReady);
    } finally {
      await operator.stop();
    }
  });
});

describe("a create the apiserver refuses", () => {
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  let sbx: SandboxClient;
  let operator: RunningOperator;

  beforeAll(async () => {
    ns = await testNamespace(kc, "refused");
    sbx = new SandboxClient(kc, ns.name);
    await sbx.core.createNamespacedResourceQuota({
      namespace: ns.name,
      body: { metadata: { name: "no-pods" }, spec: { hard: { pods: "0" } } },
    });
    // The harness runs no quota controller; admission enforces what the quota's
    // status says, so write what that controller would.
    await sbx.core.patchNamespacedResourceQuotaStatus(
      {
        name: "no-pods",
        namespace: ns.name,
        body: { status: { hard: { pods: "0" }, used: { pods: "0" } } },
      },
      merge,
    );
    await sbx.core.createNamespacedLimitRange({
      namespace: ns.name,
      body: {
        metadata: { name: "small" },
        spec: { limits: [{ type: "Container", max: { cpu: "2" } }] },
      },
    });
    operator = await startOperator({ namespace: ns.name, user: "operator-3" });
  });
  afterAll(async () => {
    await operator?.stop();
    await ns?.delete();
  });

  it.each([
    ["quota", {}, ConditionReason.Rejected, "forbidden"],
    ["limitrange", { resources: { cpu: "3" } }, ConditionReason.Rejected, "maximum cpu usage"],
    [
      "runtimeclass",
      { security: { runtimeClassName: "no-such-class" } },
      ConditionReason.MissingReference,
      'RuntimeClass "no-such-class" not found',
    ],
  ] as const)("%s: a condition with the apiserver's message", async (name, spec, reason, words) => {
    await sbx.create(name, { image: "busybox", ...spec });
    const s = await sbx.waitFor(name, (s) => {
      expect(condition(s, ConditionType.Ready)).toMatchObject({ status: "False", reason });
      expect(condition(s, ConditionType.Stalled)?.status).toBe("True");
    });
    expect(s.status?.phase).toBe("Pending");
    expect(condition(s, ConditionType.Ready)?.message).toContain(words);
    expect(await sbx.pod(name)).toBeUndefined();
  });

  it("still expires on time", async () => {
    const ttl = 6;
    const created = await sbx.create("refused-short", {
      image: "busybox",
      lifetime: { ttlSeconds: ttl },
    });
    await sbx.waitFor("refused-short", (s) =>
      expect(condition(s, ConditionType.Ready)?.reason).toBe(ConditionReason.Rejected),
    );
    await sbx.waitGone("refused-short", 20_000);
    const expiresAt =
      Date.parse(created.metadata.creationTimestamp as unknown as string) + ttl * 1000;
    expect(Date.now() - expiresAt).toBeLessThan(3000);
  });
});
