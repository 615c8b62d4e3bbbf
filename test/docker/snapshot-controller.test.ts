// The SandboxSnapshot controller end to end on the docker backend, against
// the real dockerd and apiserver: files written in a sandbox's workspace, a
// SandboxSnapshot applied with kubectl becomes Ready with its checksum, a new
// Sandbox from it waits (SnapshotNotReady) while the snapshot is not ready and
// then starts with a byte-identical workspace (every entry's type, mode,
// owner, size and SHA-256), later writes to the source are not in it, and
// deleting the SandboxSnapshot removes its snapshot volume; and the
// controller, run as users run it and killed (SIGKILL) in the middle of a
// copy, takes the snapshot again on restart and it still restores exactly.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import type Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ConditionReason, ConditionType } from "../../src/api/conditions.js";
import { GROUP, SNAPSHOT_PLURAL, VERSION } from "../../src/api/group.js";
import type { SandboxSnapshot } from "../../src/api/snapshot.js";
import { snapshotVolumeName } from "../../src/backends/docker/snapshots.js";
import { SNAPSHOT_FINALIZER } from "../../src/snapshot/decide.js";
import { kubeConfig, testNamespace, userKubeconfigPath } from "../support/cluster.js";
import {
  docker,
  ensureDockerd,
  labelled,
  OPERATOR_IMAGE,
  removeOwnedBy,
  SANDBOX_IMAGE,
} from "../support/docker.js";
import { eventually } from "../support/eventually.js";
import { type RunningOperator, startDockerOperator, startSnapshots } from "../support/operator.js";
import { REPO_ROOT } from "../support/paths.js";
import { startProcess } from "../support/processes.js";
import { runCommand } from "../support/run-command.js";
import { condition, isReady, SandboxClient, type StoredSandbox } from "../support/sandboxes.js";

const kc = kubeConfig();
const objects = kc.makeApiClient(k8s.CustomObjectsApi);
let ns: Awaited<ReturnType<typeof testNamespace>>;
let sbx: SandboxClient;
let engine: Docker;
let operator: RunningOperator | undefined;
let snapshots: Awaited<ReturnType<typeof startSnapshots>> | undefined;

const OWNER = `test-snapctl-${process.pid}`;
const SLEEP = { image: SANDBOX_IMAGE, command: ["sleep", "3600"] };
const dir = mkdtempSync(join(tmpdir(), "sbx-snapctl-"));

const startSnapshotController = () =>
  startSnapshots({
    namespace: ns.name,
    defaultBackend: "docker",
    docker: { client: engine, owner: OWNER },
  });

const startOperatorInProcess = () =>
  startDockerOperator({
    namespace: ns.name,
    user: "operator-1",
    engine,
    owner: OWNER,
    upstreamDns: "127.0.0.1",
    stallTimeoutSeconds: 300,
  });

beforeAll(async () => {
  engine = await ensureDockerd();
  ns = await testNamespace(kc, "snapctl");
  sbx = new SandboxClient(kc, ns.name);
  operator = await startOperatorInProcess();
  snapshots = await startSnapshotController();
}, 600_000);

afterAll(async () => {
  await snapshots?.stop();
  await operator?.stop();
  await removeOwnedBy(OWNER);
  await ns?.delete();
});

const kubectl = (...args: string[]) =>
  runCommand(join(inject("k8sBinDir"), "kubectl"), [
    "--kubeconfig",
    inject("kubeconfigPath"),
    ...args,
  ]);

async function applySnapshot(name: string, source: string) {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    [
      "apiVersion: sandboxing.dev/v1alpha1",
      "kind: SandboxSnapshot",
      `metadata: {name: ${name}, namespace: ${ns.name}}`,
      `spec: {source: {sandboxName: ${source}}}`,
      "",
    ].join("\n"),
  );
  const r = await kubectl("apply", "-f", file);
  expect(r.code, r.stderr).toBe(0);
}

const getSnapshot = async (name: string): Promise<SandboxSnapshot | undefined> =>
  (
    objects.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: SNAPSHOT_PLURAL,
      namespace: ns.name,
      name,
    }) as Promise<SandboxSnapshot>
  ).catch((err: { code?: number }) => {
    if (err.code === 404) return undefined;
    throw err;
  });

const waitRunning = (name: string, timeout = 120_000) =>
  sbx.waitFor(
    name,
    (s) => {
      isReady(s);
      expect(s.status?.phase).toBe("Running");
    },
    timeout,
  );

const workloadOf = (s: StoredSandbox) =>
  `sbx.${ns.name}.${s.metadata.name}.${s.metadata.uid!.slice(0, 8)}`;
// As the workload's user (the container has no capabilities: root could not read its 0640 files).
const inWorkload = async (s: StoredSandbox, script: string, user = "1000:1000") => {
  const r = await docker(["exec", "-u", user, workloadOf(s), "sh", "-c", script], 60_000);
  if (r.code !== 0) throw new Error(`${script}: ${r.stderr}`);
  return r.stdout.trim();
};

/** Every entry's path, type, mode, owner, size and (files) SHA-256: what "byte-identical" means. */
const manifest = (s: StoredSandbox) =>
  inWorkload(
    s,
    'cd /workspace && find . -mindepth 1 | sort | while read f; do if [ -f "$f" ] && [ ! -L "$f" ]; then h=$(sha256sum "$f" | cut -d\' \' -f1); else h=-; fi; echo "$f $(stat -c \'%F %a %u:%g %s\' "$f") $h"; done',
  );

describe("SandboxSnapshot controller on the docker backend", () => {
  it("snapshot -> Ready with checksum -> restore byte-identical -> delete removes the volume", async () => {
    await sbx.create("source", { ...SLEEP, workspace: {} });
    const source = await waitRunning("source");
    await inWorkload(
      source,
      [
        "mkdir -p /workspace/src/deep/er /workspace/empty-dir",
        "echo hello > /workspace/src/hello.txt",
        "head -c 2500000 /dev/urandom > /workspace/src/deep/er/random.bin",
        ": > /workspace/empty-file",
        "printf x > /workspace/one-byte && chmod 640 /workspace/one-byte",
        "ln -s src/hello.txt /workspace/link",
      ].join(" && "),
    );
    const before = await manifest(source);
    expect(before.split("\n").length).toBeGreaterThanOrEqual(8);
    expect(before).toContain("random.bin regular file 644 1000:1000 2500000");

    await applySnapshot("nightly", "source");
    const snap = await eventually(
      async () => {
        const s = await getSnapshot("nightly");
        expect(s?.status?.phase, JSON.stringify(s?.status)).toBe("Ready");
        return s!;
      },
      { timeout: 120_000 },
    );
    const handle = snapshotVolumeName({
      namespace: ns.name,
      name: "nightly",
      uid: snap.metadata.uid!,
    });
    expect(snap.status).toMatchObject({
      backend: "docker",
      handle,
      sourceSandboxUid: source.metadata.uid,
      sourceWorkspace: source.status?.workspace?.name,
      reason: "SnapshotReady",
    });
    expect(snap.status?.checksum).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(snap.status?.sizeBytes).toBeGreaterThan(2_500_000);
    expect(snap.status?.readyAt).toBeDefined();
    expect(snap.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
    expect(snap.metadata.finalizers).toContain(SNAPSHOT_FINALIZER);
    expect((await engine.getVolume(handle).inspect()).Name).toBe(handle);

    // Written after the snapshot: not in what it restores.
    await inWorkload(
      source,
      "echo later > /workspace/after.txt && echo changed > /workspace/src/hello.txt",
    );

    await sbx.create("restored", { ...SLEEP, workspace: { fromSnapshot: { name: "nightly" } } });
    const restored = await waitRunning("restored");
    expect(restored.status?.workspace?.fromSnapshot).toBe("nightly");
    expect(await manifest(restored)).toBe(before);
    expect(await inWorkload(restored, "cat /workspace/src/hello.txt")).toBe("hello");

    // Ready is final: a restart of the controller does not take it again.
    await snapshots?.stop();
    snapshots = await startSnapshotController();
    await new Promise((r) => setTimeout(r, 1_000));
    const again = await getSnapshot("nightly");
    expect(again?.status?.checksum).toBe(snap.status?.checksum);
    expect(again?.status?.readyAt).toBe(snap.status?.readyAt);

    const del = await kubectl(
      "-n",
      ns.name,
      "delete",
      "sandboxsnapshot",
      "nightly",
      "--wait=true",
      "--timeout=60s",
    );
    expect(del.code, del.stderr).toBe(0);
    expect(await getSnapshot("nightly")).toBeUndefined();
    await expect(engine.getVolume(handle).inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect(await labelled("volume", `sandboxing.dev/snapshot-uid=${snap.metadata.uid}`)).toEqual(
      [],
    );
    // The restored sandbox's workspace is its own copy.
    expect(await inWorkload(restored, "cat /workspace/src/hello.txt")).toBe("hello");
  });

  it("a sandbox from a snapshot that is not ready waits (SnapshotNotReady), then starts from it", async () => {
    await sbx.create("src2", { ...SLEEP, workspace: {} });
    const src2 = await waitRunning("src2");
    await inWorkload(
      src2,
      "head -c 100000 /dev/urandom > /workspace/blob && echo two > /workspace/two.txt",
    );
    const before = await manifest(src2);

    // No snapshot controller: the SandboxSnapshot stays without a status.
    await snapshots?.stop();
    snapshots = undefined;
    await applySnapshot("pending", "src2");
    await sbx.create("waiter", { ...SLEEP, workspace: { fromSnapshot: { name: "pending" } } });
    const waiting = await sbx.waitFor(
      "waiter",
      (s) => {
        expect(condition(s, ConditionType.WorkspaceReady)).toMatchObject({
          status: "False",
          reason: ConditionReason.SnapshotNotReady,
        });
      },
      60_000,
    );
    expect(waiting.status?.phase).toBe("Pending");
    expect(
      await labelled("container", `sandboxing.dev/sandbox-uid=${waiting.metadata.uid}`),
    ).toEqual([]);

    snapshots = await startSnapshotController();
    const waiter = await waitRunning("waiter");
    expect(await manifest(waiter)).toBe(before);
  });

  it("a controller killed in the middle of a copy takes it again on restart; it restores exactly", async () => {
    await sbx.create("big", { ...SLEEP, workspace: {} });
    const big = await waitRunning("big");
    // Large enough that the copy (volume -> controller -> snapshot volume) lasts seconds.
    await inWorkload(
      big,
      [
        "mkdir -p /workspace/data",
        "head -c 400000000 /dev/urandom > /workspace/data/large.bin",
        "echo small > /workspace/data/small.txt",
      ].join(" && "),
    );
    const before = await manifest(big);

    // The controller as users run it, in a process of its own that can be SIGKILLed.
    await snapshots?.stop();
    snapshots = undefined;
    await operator?.stop();
    operator = undefined;
    const cli = startProcess(
      "snapshot-controller",
      process.execPath,
      [
        "--import",
        "tsx",
        join(REPO_ROOT, "src/cli/main.ts"),
        "controller",
        `--kubeconfig=${userKubeconfigPath("operator-1")}`,
        `--namespaces=${ns.name}`,
        "--default-backend=docker",
        "--leader-elect=false",
        `--egress-image=${OPERATOR_IMAGE}`,
        "--docker-dns=127.0.0.1",
        `--docker-owner=${OWNER}`,
        "--metrics-bind-address=0",
        "--health-probe-bind-address=0",
      ],
      mkdtempSync(join(tmpdir(), "snapctl-controller-")),
    );
    await applySnapshot("midway", "big");
    const uid = await eventually(async () => {
      const s = await getSnapshot("midway");
      expect(s?.metadata.uid).toBeDefined();
      return s!.metadata.uid!;
    });
    const handle = snapshotVolumeName({ namespace: ns.name, name: "midway", uid });
    // The copy has begun: its helper container exists. Kill the controller then.
    await eventually(
      async () => {
        const r = await docker(["ps", "-aq", "--filter", `name=^${handle}.take$`]);
        expect(r.stdout.trim()).not.toBe("");
      },
      { timeout: 60_000, interval: 20 },
    );
    process.kill(-cli.child.pid!, "SIGKILL");
    await new Promise((r) => cli.child.once("exit", r));

    // Interrupted mid-way: not Ready, and the snapshot volume holds no checksum file.
    const interrupted = await getSnapshot("midway");
    expect(interrupted?.status?.phase, JSON.stringify(interrupted?.status)).toBe("Pending");
    expect(interrupted?.status?.sourceSandboxUid).toBe(big.metadata.uid);
    const ls = await docker([
      "run",
      "--rm",
      "--network=none",
      "-v",
      `${handle}:/snap:ro`,
      SANDBOX_IMAGE,
      "ls",
      "-A",
      "/snap",
    ]);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).not.toContain("workspace.sha256");

    operator = await startOperatorInProcess();
    snapshots = await startSnapshotController();
    const snap = await eventually(
      async () => {
        const s = await getSnapshot("midway");
        expect(s?.status?.phase, JSON.stringify(s?.status)).toBe("Ready");
        return s!;
      },
      { timeout: 180_000 },
    );
    expect(snap.status?.handle).toBe(handle);
    expect(snap.status?.checksum).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(snap.status?.sizeBytes).toBeGreaterThan(400_000_000);
    // The killed attempt's helper container is gone too. A reconcile from a cache
    // that has not yet seen Ready re-checks the copy (finding its checksum file) in
    // a helper of the same name, removed before that reconcile ends: wait it out.
    await eventually(async () => {
      const helpers = await docker(["ps", "-aq", "--filter", `name=^${handle}.take$`]);
      expect(helpers.stdout.trim()).toBe("");
    });

    await sbx.create("big-restored", {
      ...SLEEP,
      workspace: { fromSnapshot: { name: "midway" } },
    });
    const restored = await waitRunning("big-restored", 180_000);
    expect(await manifest(restored)).toBe(before);
  }, 420_000);
});
