// The Sandbox controller with the pod backend, end to end against the real
// control plane: kube-scheduler places Pods, kwok runs them, the garbage
// collector removes what a deleted Sandbox owned.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConditionReason, ConditionType } from "../../src/api/conditions.js";
import { Labels } from "../../src/api/labels.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";
import { type RunningOperator, startOperator } from "../support/operator.js";
import { condition, isReady, notFound, SandboxClient } from "../support/sandboxes.js";

const kc = kubeConfig();
let ns: Awaited<ReturnType<typeof testNamespace>>;
let sbx: SandboxClient;
let operator: RunningOperator;
const STALL_TIMEOUT = 3;

beforeAll(async () => {
  ns = await testNamespace(kc, "pod");
  sbx = new SandboxClient(kc, ns.name);
  operator = await startOperator({
    namespace: ns.name,
    user: "operator-0",
    stallTimeoutSeconds: STALL_TIMEOUT,
  });
});
afterAll(async () => {
  await operator?.stop();
  await ns?.delete();
});

describe("pod backend", () => {
  it("runs a sandbox as a hardened pod fenced by a network policy, and reports Ready", async () => {
    await sbx.create("hello", { image: "busybox", command: ["sleep", "3600"] });
    const s = await sbx.waitFor("hello", (s) => {
      isReady(s);
      expect(s.status?.phase).toBe("Running");
    });
    expect(s.status).toMatchObject({ backend: "pod", podName: "hello", observedGeneration: 1 });
    expect(s.status?.ip).toMatch(/^10\.244\./);
    expect(Date.parse(s.status!.expiresAt!)).toBe(
      Date.parse(s.metadata.creationTimestamp as unknown as string) + 3600_000,
    );
    expect(condition(s, ConditionType.Expired)?.status).toBe("False");
    expect(condition(s, ConditionType.EgressReady)).toMatchObject({
      status: "True",
      reason: ConditionReason.EgressEnforced,
    });

    const pod = (await sbx.pod("hello"))!;
    expect(pod.metadata?.ownerReferences?.[0]).toMatchObject({
      kind: "Sandbox",
      uid: s.metadata.uid,
      controller: true,
    });
    expect(pod.metadata?.labels?.[Labels.sandboxUid]).toBe(s.metadata.uid);
    expect(pod.spec?.automountServiceAccountToken).toBe(false);
    expect(pod.spec?.containers[0]?.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
      runAsNonRoot: true,
      runAsUser: 1000,
    });
    const np = await sbx.networking.readNamespacedNetworkPolicy({
      name: "hello",
      namespace: ns.name,
    });
    expect(np.spec?.podSelector?.matchLabels).toEqual({ [Labels.sandboxUid]: s.metadata.uid });
  });

  it("exposes declared ports through a Service and reports endpoints", async () => {
    await sbx.create("web", { image: "busybox", ports: [{ name: "http", port: 8000 }] });
    const s = await sbx.waitFor("web", isReady);
    expect(s.status?.endpoints).toEqual([
      {
        name: "http",
        port: 8000,
        host: `web.${ns.name}.svc`,
        url: `http://web.${ns.name}.svc:8000`,
      },
    ]);
    const svc = await sbx.core.readNamespacedService({ name: "web", namespace: ns.name });
    expect(svc.spec?.ports?.[0]).toMatchObject({ port: 8000, targetPort: 8000 });
    // One Event per phase change, none for the Pending every new sandbox starts in.
    await eventually(async () =>
      expect((await sbx.events("web")).map((e) => e.reason)).toContain("Running"),
    );
    expect((await sbx.events("web")).map((e) => e.reason)).not.toContain("Pending");
  });

  it("reports an image that cannot be pulled, then fails the sandbox after the stall timeout", async () => {
    await sbx.create("nopull", { image: "registry.invalid/image-pull-backoff:test" });
    const stalled = await sbx.waitFor("nopull", (s) => {
      expect(condition(s, ConditionType.Ready)).toMatchObject({
        status: "False",
        reason: ConditionReason.ImagePullBackOff,
      });
      expect(condition(s, ConditionType.Stalled)?.status).toBe("True");
    });
    expect(condition(stalled, ConditionType.Ready)?.message).toContain("Back-off pulling image");
    const failed = await sbx.waitFor(
      "nopull",
      (s) => expect(s.status?.phase).toBe("Failed"),
      15_000,
    );
    expect(failed.status?.reason).toBe(ConditionReason.ImagePullBackOff);
    expect(failed.status?.message).toContain(`stalled for more than ${STALL_TIMEOUT}s`);
    const stalledAt = Date.parse(condition(stalled, ConditionType.Stalled)!.lastTransitionTime);
    expect(Date.parse(failed.status!.finishedAt!) - stalledAt).toBeGreaterThanOrEqual(
      (STALL_TIMEOUT - 1) * 1000,
    );
    await eventually(async () => expect(await sbx.pod("nopull")).toBeUndefined());
  });

  it("reports a sandbox no node can run as Unschedulable", async () => {
    await sbx.create("huge", { image: "busybox", resources: { cpu: "1000" } });
    const s = await sbx.waitFor("huge", (s) =>
      expect(condition(s, ConditionType.Ready)?.reason).toBe(ConditionReason.Unschedulable),
    );
    expect(condition(s, ConditionType.Ready)?.message).toContain("Insufficient cpu");
  });

  it.each([
    [0, "Completed", "Succeeded"],
    [3, "Error", "Failed"],
  ] as const)("records exit code %d as %s", async (exitCode, reason, phase) => {
    const name = `exit-${exitCode}`;
    await sbx.create(name, { image: "busybox" });
    await sbx.waitFor(name, isReady);
    const now = new Date();
    await sbx.setPodStatus(name, {
      phase,
      containerStatuses: [
        {
          name: "sandbox",
          image: "busybox",
          imageID: "",
          ready: false,
          restartCount: 0,
          state: { terminated: { exitCode, reason, startedAt: now, finishedAt: now } },
        },
      ],
    });
    const s = await sbx.waitFor(name, (s) => expect(s.status?.phase).toBe(phase));
    expect(s.status?.exitCode).toBe(exitCode);
    expect(condition(s, ConditionType.Ready)?.status).toBe("False");
  });

  it("turns a missing Secret into a condition and keeps reconciling other sandboxes", async () => {
    await sbx.create("nosecret", {
      image: "busybox",
      env: [{ name: "TOKEN", valueFrom: { secretKeyRef: { name: "missing", key: "token" } } }],
    });
    await eventually(async () => expect(await sbx.pod("nosecret")).toBeDefined());
    // What the kubelet reports for a container whose Secret does not exist.
    await sbx.setPodStatus("nosecret", {
      phase: "Pending",
      conditions: [{ type: "Ready", status: "False" }],
      containerStatuses: [
        {
          name: "sandbox",
          image: "busybox",
          imageID: "",
          ready: false,
          restartCount: 0,
          state: {
            waiting: {
              reason: "CreateContainerConfigError",
              message: 'secret "missing" not found',
            },
          },
        },
      ],
    });
    await sbx.create("neighbour", { image: "busybox" });
    const s = await sbx.waitFor("nosecret", (s) =>
      expect(condition(s, ConditionType.Ready)?.reason).toBe(
        ConditionReason.CreateContainerConfigError,
      ),
    );
    expect(condition(s, ConditionType.Ready)?.message).toContain('secret "missing" not found');
    await sbx.waitFor("neighbour", isReady);
  });
});

describe("egress", () => {
  it("starts the firewall, the sidecar and the agent's copy before the workload", async () => {
    await sbx.create("fenced", { image: "busybox" });
    await sbx.waitFor("fenced", isReady);
    const pod = (await sbx.pod("fenced"))!;
    expect(pod.spec?.initContainers?.map((c) => [c.name, c.restartPolicy])).toEqual([
      ["egress-init", undefined],
      ["egress", "Always"],
      ["sandbox-agent-install", undefined],
    ]);
    expect(pod.spec?.containers[0]?.env).toContainEqual({
      name: "HTTPS_PROXY",
      value: "http://127.0.0.1:15001",
    });
  });

  it("is not Ready while the sidecar is not ready, and says why", async () => {
    await sbx.create("sidecar-down", { image: "busybox" });
    await sbx.waitFor("sidecar-down", isReady);
    const pod = (await sbx.pod("sidecar-down"))!;
    await sbx.setPodStatus("sidecar-down", {
      initContainerStatuses: pod.status!.initContainerStatuses!.map((c) =>
        c.name === "egress" ? { ...c, ready: false } : c,
      ),
    });
    const s = await sbx.waitFor("sidecar-down", (s) =>
      expect(condition(s, ConditionType.Ready)?.reason).toBe(ConditionReason.EgressPending),
    );
    expect(condition(s, ConditionType.EgressReady)?.status).toBe("False");
  });

  it("tells a sidecar restart by the kubelet: EgressReady False with the count, an Event, then True", async () => {
    await sbx.create("sidecar-restart", { image: "busybox" });
    await sbx.waitFor("sidecar-restart", isReady);
    const pod = (await sbx.pod("sidecar-restart"))!;
    const sidecarWith = (change: object) =>
      pod.status!.initContainerStatuses!.map((c) =>
        c.name === "egress" ? { ...c, ...change } : c,
      );
    const crashed = { terminated: { exitCode: 137, reason: "OOMKilled", finishedAt: new Date() } };
    // What the kubelet writes while it waits to restart a sidecar that died.
    await sbx.setPodStatus("sidecar-restart", {
      initContainerStatuses: sidecarWith({
        ready: false,
        restartCount: 1,
        state: { waiting: { reason: "CrashLoopBackOff", message: "back-off 10s" } },
        lastState: crashed,
      }),
    });
    const down = await sbx.waitFor("sidecar-restart", (s) =>
      expect(condition(s, ConditionType.EgressReady)?.status).toBe("False"),
    );
    expect(condition(down, ConditionType.EgressReady)?.message).toContain(
      "is restarting (CrashLoopBackOff, 1 restart; last exit code 137 (OOMKilled))",
    );
    expect(condition(down, ConditionType.Ready)?.reason).toBe(ConditionReason.EgressPending);
    // The workload runs on: a sidecar restart is not the workload stalling.
    expect(down.status?.phase).toBe("Running");
    expect(condition(down, ConditionType.Stalled)?.status).not.toBe("True");
    await eventually(async () =>
      expect((await sbx.events("sidecar-restart")).map((e) => e.reason)).toContain(
        "EgressSidecarRestarted",
      ),
    );
    // Back: running and ready again after the restart.
    await sbx.setPodStatus("sidecar-restart", {
      initContainerStatuses: sidecarWith({
        ready: true,
        restartCount: 1,
        state: { running: { startedAt: new Date() } },
        lastState: crashed,
      }),
    });
    const up = await sbx.waitFor("sidecar-restart", isReady);
    expect(condition(up, ConditionType.EgressReady)?.status).toBe("True");
    expect(up.status?.phase).toBe("Running");
  });

  it("delivers a name-rule change to the running pod in place", async () => {
    await sbx.create("policy", { image: "busybox" });
    await sbx.waitFor("policy", isReady);
    const before = (await sbx.pod("policy"))!;
    await sbx.patchSpec("policy", {
      network: {
        egress: { defaultAction: "deny", rules: [{ action: "allow", target: "pypi.org" }] },
      },
    });
    const after = await eventually(async () => {
      const pod = (await sbx.pod("policy"))!;
      expect(JSON.parse(pod.metadata!.annotations!["sandboxing.dev/egress-policy"]!).rules).toEqual(
        [{ action: "allow", target: "pypi.org" }],
      );
      return pod;
    });
    expect(after.metadata?.uid).toBe(before.metadata?.uid);
    await eventually(async () =>
      expect((await sbx.events("policy")).map((e) => e.reason)).toContain("EgressPolicyUpdated"),
    );
  });

  it("delivers an address-rule change to the running pod in place too (the firewall holds no policy)", async () => {
    const before = (await sbx.pod("policy"))!;
    await sbx.patchSpec("policy", {
      network: {
        egress: { defaultAction: "deny", rules: [{ action: "allow", target: "10.20.0.0/16" }] },
      },
    });
    await eventually(async () => {
      const pod = (await sbx.pod("policy"))!;
      expect(JSON.parse(pod.metadata!.annotations!["sandboxing.dev/egress-policy"]!).rules).toEqual(
        [{ action: "allow", target: "10.20.0.0/16" }],
      );
      expect(pod.metadata?.uid).toBe(before.metadata?.uid);
    });
    await sbx.waitFor("policy", isReady);
    expect((await sbx.pod("policy"))!.metadata?.uid).toBe(before.metadata?.uid);
  });
});

describe("drift", () => {
  it("recreates a deleted pod and network policy", async () => {
    await sbx.create("drift", { image: "busybox", ports: [{ name: "http", port: 80 }] });
    const before = await sbx.waitFor("drift", isReady);
    const oldPod = (await sbx.pod("drift"))!;
    await sbx.core.deleteNamespacedPod({
      name: "drift",
      namespace: ns.name,
      gracePeriodSeconds: 0,
    });
    await sbx.networking.deleteNamespacedNetworkPolicy({ name: "drift", namespace: ns.name });
    await eventually(async () => {
      const pod = await sbx.pod("drift");
      expect(pod?.metadata?.uid).toBeDefined();
      expect(pod?.metadata?.uid).not.toBe(oldPod.metadata?.uid);
      await sbx.networking.readNamespacedNetworkPolicy({ name: "drift", namespace: ns.name });
    });
    await sbx.waitFor("drift", isReady);
    expect(before.metadata.uid).toBeDefined();
  });

  it("restores a hand-edited Service and network policy", async () => {
    await sbx.waitFor("drift", isReady);
    const svc = await sbx.core.readNamespacedService({ name: "drift", namespace: ns.name });
    svc.spec!.ports = [{ name: "http", port: 9999, targetPort: 9999, protocol: "TCP" }];
    await sbx.core.replaceNamespacedService({ name: "drift", namespace: ns.name, body: svc });
    const np = await sbx.networking.readNamespacedNetworkPolicy({
      name: "drift",
      namespace: ns.name,
    });
    np.spec!.egress = [{}]; // allow everything
    await sbx.networking.replaceNamespacedNetworkPolicy({
      name: "drift",
      namespace: ns.name,
      body: np,
    });
    await eventually(async () => {
      const s = await sbx.core.readNamespacedService({ name: "drift", namespace: ns.name });
      expect(s.spec?.ports?.[0]?.port).toBe(80);
      const n = await sbx.networking.readNamespacedNetworkPolicy({
        name: "drift",
        namespace: ns.name,
      });
      expect(n.spec?.egress?.[0]?.ports?.[0]?.port).toBe(53);
    });
  });

  it("recreates the pod when the spec changes, and says so in an Event", async () => {
    await sbx.create("respec", { image: "busybox" });
    await sbx.waitFor("respec", isReady);
    const oldPod = (await sbx.pod("respec"))!;
    await sbx.patchSpec("respec", { image: "busybox:1.36" });
    await eventually(async () => {
      const pod = await sbx.pod("respec");
      expect(pod?.spec?.containers[0]?.image).toBe("busybox:1.36");
      expect(pod?.metadata?.uid).not.toBe(oldPod.metadata?.uid);
    });
    const s = await sbx.waitFor("respec", (s) => {
      isReady(s);
      expect(s.status?.observedGeneration).toBe(2);
    });
    expect(s.metadata.generation).toBe(2);
    await eventually(async () => {
      const events = await sbx.events("respec");
      expect(events.map((e) => e.reason)).toContain("PodRecreated");
    });
  });
});

describe("lifetime", () => {
  it("deletes the sandbox and its objects at expiry with onExpire: Delete", async () => {
    const created = await sbx.create("short", { image: "busybox", lifetime: { ttlSeconds: 3 } });
    await sbx.waitFor("short", isReady);
    await sbx.waitGone("short", 10_000);
    const goneAt = Date.now();
    const expiresAt = Date.parse(created.metadata.creationTimestamp as unknown as string) + 3000;
    expect(goneAt - expiresAt).toBeLessThan(3000);
    await eventually(async () => expect(await sbx.pod("short")).toBeUndefined());
  });

  it("keeps the sandbox with phase Expired with onExpire: Retain", async () => {
    await sbx.create("kept", { image: "busybox", lifetime: { ttlSeconds: 3, onExpire: "Retain" } });
    await sbx.waitFor("kept", isReady);
    const s = await sbx.waitFor("kept", (s) => expect(s.status?.phase).toBe("Expired"), 10_000);
    expect(condition(s, ConditionType.Expired)).toMatchObject({
      status: "True",
      reason: ConditionReason.LifetimeElapsed,
    });
    expect(condition(s, ConditionType.Ready)?.status).toBe("False");
    await eventually(async () => {
      expect(await sbx.pod("kept")).toBeUndefined();
      await expect(
        sbx.networking
          .readNamespacedNetworkPolicy({ name: "kept", namespace: ns.name })
          .catch(notFound),
      ).resolves.toBeUndefined();
    });
  });

  it("takes a renewal into account at once", async () => {
    await sbx.create("renew", { image: "busybox", lifetime: { ttlSeconds: 4 } });
    const s = await sbx.waitFor("renew", isReady);
    await sbx.patchSpec("renew", { lifetime: { ttlSeconds: 600 } });
    const renewed = await sbx.waitFor("renew", (r) =>
      expect(Date.parse(r.status!.expiresAt!)).toBe(
        Date.parse(s.metadata.creationTimestamp as unknown as string) + 600_000,
      ),
    );
    await new Promise((r) => setTimeout(r, 5000));
    expect((await sbx.get("renew"))?.status?.phase).toBe("Running");
    expect(renewed.status?.observedGeneration).toBe(2);
  });

  it("lets the garbage collector remove what a deleted sandbox owned", async () => {
    await sbx.create("owned", { image: "busybox", ports: [{ name: "http", port: 80 }] });
    await sbx.waitFor("owned", isReady);
    await sbx.delete("owned");
    await eventually(
      async () => {
        expect(await sbx.pod("owned")).toBeUndefined();
        const svc = await sbx.core
          .readNamespacedService({ name: "owned", namespace: ns.name })
          .catch(notFound);
        expect(svc).toBeUndefined();
        const np = await sbx.networking
          .readNamespacedNetworkPolicy({ name: "owned", namespace: ns.name })
          .catch(notFound);
        expect(np).toBeUndefined();
      },
      { timeout: 30_000 },
    );
  });
});
