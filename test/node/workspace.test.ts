// Workspaces on the pod backend, on the real node (PVCs of the harness's
// local-path class, test/support/node/storage.ts): data written by a sandbox
// survives its deletion (retentionPolicy Retain) into a new sandbox that
// mounts the same workspace, and a suspend/resume, each with the controller
// restarted in the middle; a Delete workspace goes with its Sandbox; Secret and
// ConfigMap mounts are read-only for the workload (EROFS).
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConditionReason, ConditionType } from "../../src/api/conditions.js";
import { agentSecretName } from "../../src/backends/pod/agent.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { OPERATOR_IMAGE } from "../support/docker.js";
import { eventually } from "../support/eventually.js";
import { kubectl, NODE_SANDBOX_IMAGE, NODE_TEST_RESOURCES } from "../support/node/pods.js";
import { type RunningOperator, startOperator } from "../support/operator.js";
import { condition, isReady, SandboxClient } from "../support/sandboxes.js";

const kc = kubeConfig();
const core = kc.makeApiClient(k8s.CoreV1Api);
let ns: Awaited<ReturnType<typeof testNamespace>>;
let sbx: SandboxClient;
let operator: RunningOperator | undefined;

const startController = async () => {
  operator = await startOperator({
    namespace: ns.name,
    user: "operator-1",
    egressImage: OPERATOR_IMAGE,
  });
};
/** Stop the controller, do `meanwhile`, start a new one: nothing it kept in memory survives. */
async function restartAround(meanwhile: () => Promise<void>): Promise<void> {
  await operator?.stop();
  operator = undefined;
  await meanwhile();
  await startController();
}

beforeAll(async () => {
  ns = await testNamespace(kc, "wspace");
  sbx = new SandboxClient(kc, ns.name);
  await startController();
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
const claim = (name: string) =>
  core.readNamespacedPersistentVolumeClaim({ name, namespace: ns.name }).catch(() => undefined);

/** Writes 1 MiB of random bytes and its checksum, unless they are there: then checks them. */
const WRITE_OR_CHECK =
  "cd /workspace && if [ -f blob ]; then sha256sum -c sum && echo found; " +
  "else head -c 1048576 /dev/urandom > blob && sha256sum blob > sum && echo wrote; fi";

describe("workspaces on the pod backend (real node)", () => {
  it("a retained workspace outlives its Sandbox (deleted while no controller runs) and is mounted by the next", async () => {
    await sbx.create("first", {
      ...run(WRITE_OR_CHECK),
      workspace: { retentionPolicy: "Retain", volume: { size: "64Mi" } },
    });
    const done = await sbx.waitFor(
      "first",
      (s) => expect(s.status?.phase).toBe("Succeeded"),
      120_000,
    );
    expect(await logs("first")).toBe("wrote\n");
    expect(done.status?.workspace).toMatchObject({
      name: "first-workspace",
      retentionPolicy: "Retain",
    });
    const pvc = await claim("first-workspace");
    expect(pvc?.status?.phase).toBe("Bound");
    // Retained: nothing owns it, so no cascade can take it.
    expect(pvc?.metadata?.ownerReferences ?? []).toEqual([]);

    await restartAround(async () => {
      await sbx.delete("first");
      await sbx.waitGone("first", 60_000);
      await eventually(async () => expect(await sbx.pod("first")).toBeUndefined(), {
        timeout: 60_000,
      });
    });
    expect((await claim("first-workspace"))?.metadata?.deletionTimestamp).toBeUndefined();

    await sbx.create("second", {
      ...run(WRITE_OR_CHECK),
      workspace: { existing: { name: "first-workspace" } },
    });
    await sbx.waitFor("second", (s) => expect(s.status?.phase).toBe("Succeeded"), 120_000);
    expect(await logs("second")).toBe("blob: OK\nfound\n");
    // Mounted, never taken over: still nobody's.
    expect((await claim("first-workspace"))?.metadata?.ownerReferences ?? []).toEqual([]);
  });

  it("a workspace with retentionPolicy Delete goes with its Sandbox", async () => {
    await sbx.create("brief", { ...run("echo x > /workspace/x"), workspace: {} });
    await sbx.waitFor("brief", (s) => expect(s.status?.phase).toBe("Succeeded"), 120_000);
    const pvc = await claim("brief-workspace");
    expect(pvc?.metadata?.ownerReferences?.map((o) => o.kind)).toEqual(["Sandbox"]);
    await sbx.delete("brief");
    await eventually(async () => expect(await claim("brief-workspace")).toBeUndefined(), {
      timeout: 90_000,
      interval: 500,
    });
  });

  it("a missing existing workspace holds the sandbox back with WorkspaceNotFound, creating no Pod", async () => {
    await sbx.create("orphan", {
      ...run("true"),
      workspace: { existing: { name: "no-such-claim" } },
    });
    const s = await sbx.waitFor(
      "orphan",
      (s) =>
        expect(condition(s, ConditionType.WorkspaceReady)?.reason).toBe(
          ConditionReason.WorkspaceNotFound,
        ),
      30_000,
    );
    expect(condition(s, ConditionType.WorkspaceReady)?.message).toContain("no-such-claim");
    expect(await sbx.pod("orphan")).toBeUndefined();
  });

  it("suspend -> resume keeps the workspace and identity, with the controller restarted while suspended", async () => {
    await sbx.create("nap", {
      ...run(`${WRITE_OR_CHECK}; sleep 3600`),
      workspace: { volume: { size: "64Mi" } },
    });
    await sbx.waitFor("nap", (s) => isReady(s), 120_000);
    expect(await logs("nap")).toBe("wrote\n");
    const firstPod = await sbx.pod("nap");
    const secret = await core.readNamespacedSecret({
      name: agentSecretName("nap"),
      namespace: ns.name,
    });

    await sbx.patchSpec("nap", { suspended: true });
    const suspended = await sbx.waitFor(
      "nap",
      (s) => expect(s.status?.phase).toBe("Suspended"),
      60_000,
    );
    expect(condition(suspended, ConditionType.Suspended)?.status).toBe("True");
    expect(await sbx.pod("nap")).toBeUndefined();
    expect((await claim("nap-workspace"))?.status?.phase).toBe("Bound");

    await restartAround(async () => {});
    // Suspended stays suspended: the new controller recreates nothing and writes nothing.
    const rv = suspended.metadata?.resourceVersion;
    await new Promise((r) => setTimeout(r, 3000));
    expect(await sbx.pod("nap")).toBeUndefined();
    expect((await sbx.get("nap"))?.metadata?.resourceVersion).toBe(rv);

    await sbx.patchSpec("nap", { suspended: false });
    const resumed = await sbx.waitFor("nap", (s) => isReady(s), 120_000);
    expect(condition(resumed, ConditionType.Suspended)?.reason).toBe(ConditionReason.Resumed);
    const pod = await sbx.pod("nap");
    expect(pod?.metadata?.uid).not.toBe(firstPod?.metadata?.uid);
    expect(await logs("nap")).toBe("blob: OK\nfound\n");
    // The same identity: the agent's credential was kept, not reissued.
    const after = await core.readNamespacedSecret({
      name: agentSecretName("nap"),
      namespace: ns.name,
    });
    expect(after.metadata?.uid).toBe(secret.metadata?.uid);
  });

  it("Secret and ConfigMap mounts are read-only for the workload (EROFS)", async () => {
    await core.createNamespacedSecret({
      namespace: ns.name,
      body: { metadata: { name: "creds" }, stringData: { token: "s3cret" } },
    });
    await core.createNamespacedConfigMap({
      namespace: ns.name,
      body: { metadata: { name: "conf" }, data: { "app.ini": "mode=agent\n" } },
    });
    const attempts = [
      "cat /etc/creds/token; echo",
      "cat /etc/app/app.ini",
      "echo x > /etc/creds/token",
      "touch /etc/creds/new",
      "rm -f /etc/creds/token",
      "echo x > /etc/app/app.ini",
      "mkdir /etc/app/d",
    ]
      .map((c) => `(${c}) 2>&1 || echo refused`)
      .join("; ");
    await sbx.create("ro", {
      ...run(attempts),
      mounts: [
        { mountPath: "/etc/creds", secret: { name: "creds" } },
        { mountPath: "/etc/app", configMap: { name: "conf" } },
      ],
    });
    await sbx.waitFor("ro", (s) => expect(s.status?.phase).toBe("Succeeded"), 120_000);
    const out = (await logs("ro")).split("\n");
    expect(out.slice(0, 2)).toEqual(["s3cret", "mode=agent"]);
    // Every write attempt fails with EROFS, not merely EACCES.
    const writes = out.slice(2).filter(Boolean);
    expect(writes.filter((l) => l === "refused")).toHaveLength(5);
    for (const line of writes.filter((l) => l !== "refused")) {
      expect(line).toMatch(/Read-only file system/);
    }
  });
});
