// Workspaces on the docker backend against the real dockerd and apiserver:
// a retained workspace outlives its Sandbox and is mounted by the next one,
// suspend removes the containers and keeps the volume, resume finds the data,
// and a controller restart in the middle of either changes nothing; host
// paths outside the allowlist are refused by name and never mounted; an
// allowed read-only host path is EROFS for the workload.
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConditionReason, ConditionType } from "../../src/api/conditions.js";
import { parseAllowedHostPaths } from "../../src/backends/docker/host-paths.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import {
  containerNames,
  docker,
  ensureDockerd,
  labelled,
  removeOwnedBy,
  SANDBOX_IMAGE,
} from "../support/docker.js";
import { type RunningOperator, startDockerOperator } from "../support/operator.js";
import { condition, isReady, SandboxClient, type StoredSandbox } from "../support/sandboxes.js";

const kc = kubeConfig();
let ns: Awaited<ReturnType<typeof testNamespace>>;
let sbx: SandboxClient;
let engine: Docker;
let operator: RunningOperator | undefined;

const OWNER = `test-ws-${process.pid}`;
const hostRoot = mkdtempSync(join(tmpdir(), "sbx-hostpaths-"));
const allowedRo = join(hostRoot, "ro");
const allowedRw = join(hostRoot, "rw");
const outside = join(hostRoot, "outside");

function start(): Promise<RunningOperator> {
  return startDockerOperator({
    namespace: ns.name,
    user: "operator-1",
    engine,
    owner: OWNER,
    upstreamDns: "127.0.0.1",
    stallTimeoutSeconds: 60,
    allowedHostPaths: parseAllowedHostPaths(`${allowedRo},${allowedRw}:rw`),
  });
}

async function restart(between?: () => Promise<unknown>) {
  await operator?.stop();
  operator = undefined;
  await between?.();
  operator = await start();
}

beforeAll(async () => {
  for (const d of [allowedRo, allowedRw, outside]) mkdirSync(d, { recursive: true });
  writeFileSync(join(allowedRo, "config.txt"), "from the host\n");
  writeFileSync(join(outside, "secret.txt"), "not for sandboxes\n");
  symlinkSync(outside, join(allowedRo, "escape"));
  engine = await ensureDockerd();
  ns = await testNamespace(kc, "workspace");
  sbx = new SandboxClient(kc, ns.name);
  operator = await start();
}, 600_000);

afterAll(async () => {
  await operator?.stop();
  await removeOwnedBy(OWNER);
  await ns?.delete();
});

const waitRunning = (name: string, timeout = 90_000) =>
  sbx.waitFor(
    name,
    (s) => {
      isReady(s);
      expect(s.status?.phase).toBe("Running");
    },
    timeout,
  );

const inWorkload = async (s: StoredSandbox, script: string) => {
  const r = await docker(["exec", containerNames(s).workload, "sh", "-c", script], 30_000);
  return `${r.stdout}${r.stderr}`.trim();
};
const containersOf = async (s: StoredSandbox) =>
  labelled("container", `sandboxing.dev/sandbox-uid=${s.metadata.uid}`);

const SLEEP = { image: SANDBOX_IMAGE, command: ["sleep", "3600"] };

describe("docker workspaces", () => {
  it("a retained workspace survives its Sandbox (deleted while the controller is down) and is mounted by the next", async () => {
    await sbx.create("first", { ...SLEEP, workspace: { retentionPolicy: "Retain" } });
    const first = await waitRunning("first");
    const volume = first.status?.workspace?.name;
    expect(first.status?.workspace).toEqual({
      name: `${containerNames(first).workload}.workspace`,
      retentionPolicy: "Retain",
    });
    expect(condition(first, ConditionType.WorkspaceReady)).toMatchObject({
      status: "True",
      reason: ConditionReason.WorkspaceBound,
    });
    await inWorkload(
      first,
      "echo kept > /workspace/data.txt && head -c 65536 /dev/urandom > /workspace/blob",
    );
    const sum = await inWorkload(first, "md5sum /workspace/blob | cut -d' ' -f1");

    await restart(async () => {
      await sbx.delete("first");
      // The finalizer holds the Sandbox until the restarted controller cleans up.
      expect((await sbx.get("first"))?.metadata.deletionTimestamp).toBeDefined();
    });
    await sbx.waitGone("first", 60_000);
    expect(await containersOf(first)).toEqual([]);
    expect(await labelled("volume", `sandboxing.dev/sandbox-uid=${first.metadata.uid}`)).toEqual([
      volume,
    ]);

    await sbx.create("second", { ...SLEEP, workspace: { existing: { name: volume! } } });
    const second = await waitRunning("second");
    expect(second.status?.workspace).toEqual({ name: volume, retentionPolicy: "Retain" });
    expect(await inWorkload(second, "cat /workspace/data.txt")).toBe("kept");
    expect(await inWorkload(second, "md5sum /workspace/blob | cut -d' ' -f1")).toBe(sum);
    await sbx.delete("second");
    await sbx.waitGone("second", 60_000);
    // Mounted through existing: never deleted by the Sandbox that mounted it.
    expect((await engine.getVolume(volume!).inspect()).Name).toBe(volume);
    await engine.getVolume(volume!).remove();
  });

  it("a workspace with retention Delete goes with its Sandbox", async () => {
    await sbx.create("scratchy", { ...SLEEP, workspace: {} });
    const s = await waitRunning("scratchy");
    expect(s.status?.workspace?.retentionPolicy).toBe("Delete");
    await sbx.delete("scratchy");
    await sbx.waitGone("scratchy", 60_000);
    expect(await labelled("volume", `sandboxing.dev/sandbox-uid=${s.metadata.uid}`)).toEqual([]);
  });

  it("refuses an existing volume of another namespace or not made by the operator", async () => {
    await engine.createVolume({ Name: `handmade-${process.pid}` });
    try {
      await sbx.create("stranger", {
        ...SLEEP,
        workspace: { existing: { name: `handmade-${process.pid}` } },
      });
      const s = await sbx.waitFor("stranger", (x) =>
        expect(condition(x, ConditionType.WorkspaceReady)).toMatchObject({
          status: "False",
          reason: ConditionReason.WorkspaceNotFound,
        }),
      );
      expect(condition(s, ConditionType.WorkspaceReady)?.message).toContain(
        "not a workspace made by this operator",
      );
      expect(await containersOf(s)).toEqual([]);
    } finally {
      await sbx.delete("stranger");
      await sbx.waitGone("stranger", 60_000);
      await engine.getVolume(`handmade-${process.pid}`).remove();
    }
  });

  it("suspend removes the containers and keeps the workspace; resume (across a controller restart) finds the data", async () => {
    await sbx.create("napper", { ...SLEEP, workspace: {}, ports: [{ name: "http", port: 8000 }] });
    let s = await waitRunning("napper");
    await inWorkload(s, "echo before-suspend > /workspace/state");
    const firstContainer = s.status?.containerId;

    // Suspend while the controller is down: the restarted one does it.
    await restart(() => sbx.patchSpec("napper", { suspended: true }));
    s = await sbx.waitFor(
      "napper",
      (x) => {
        expect(x.status?.phase).toBe("Suspended");
        expect(condition(x, ConditionType.Suspended)).toMatchObject({
          status: "True",
          reason: ConditionReason.Suspended,
        });
      },
      60_000,
    );
    expect(s.status?.suspendedAt).toBeDefined();
    expect(s.status?.containerId).toBeUndefined();
    expect(s.status?.endpoints).toBeUndefined();
    expect(condition(s, ConditionType.Ready)?.reason).toBe(ConditionReason.Suspended);
    expect(await containersOf(s)).toEqual([]);
    expect(await labelled("volume", `sandboxing.dev/sandbox-uid=${s.metadata.uid}`)).toContain(
      s.status?.workspace?.name,
    );
    // Zero writes while suspended: the stored object does not move.
    const rv = (await sbx.get("napper"))?.metadata.resourceVersion;
    await operator!.sweepDocker();
    await new Promise((r) => setTimeout(r, 3000));
    expect((await sbx.get("napper"))?.metadata.resourceVersion).toBe(rv);

    // Resume across another restart.
    await restart(() => sbx.patchSpec("napper", { suspended: false }));
    s = await waitRunning("napper");
    expect(s.status?.containerId).not.toBe(firstContainer);
    expect(s.status?.suspendedAt).toBeUndefined();
    expect(condition(s, ConditionType.Suspended)).toMatchObject({
      status: "False",
      reason: ConditionReason.Resumed,
    });
    expect(s.status?.endpoints?.[0]?.name).toBe("http");
    expect(await inWorkload(s, "cat /workspace/state")).toBe("before-suspend");
    await sbx.delete("napper");
    await sbx.waitGone("napper", 60_000);
  });

  it("refuses a host path outside the allowlist, naming it; nothing is created", async () => {
    await sbx.create("nosy", {
      ...SLEEP,
      mounts: [{ mountPath: "/host", hostPath: { path: outside } }],
    });
    const s = await sbx.waitFor("nosy", (x) =>
      expect(condition(x, ConditionType.Invalid)).toMatchObject({
        status: "True",
        reason: ConditionReason.HostPathNotAllowed,
      }),
    );
    expect(condition(s, ConditionType.Invalid)?.message).toContain(`host path ${outside}`);
    expect(await containersOf(s)).toEqual([]);
    await sbx.delete("nosy");
    await sbx.waitGone("nosy", 60_000);
  });

  it("refuses a symlink under an allowed prefix that leads outside", async () => {
    const link = join(allowedRo, "escape");
    await sbx.create("sneaky", {
      ...SLEEP,
      mounts: [{ mountPath: "/host", hostPath: { path: link } }],
    });
    const s = await sbx.waitFor("sneaky", (x) =>
      expect(condition(x, ConditionType.Invalid)?.reason).toBe(ConditionReason.HostPathNotAllowed),
    );
    expect(condition(s, ConditionType.Invalid)?.message).toContain(
      `${link} (resolves to ${outside})`,
    );
    expect(await containersOf(s)).toEqual([]);
    await sbx.delete("sneaky");
    await sbx.waitGone("sneaky", 60_000);
  });

  it("refuses a writable mount under a read-only entry", async () => {
    await sbx.create("greedy", {
      ...SLEEP,
      mounts: [{ mountPath: "/host", hostPath: { path: allowedRo, readOnly: false } }],
    });
    const s = await sbx.waitFor("greedy", (x) =>
      expect(condition(x, ConditionType.Invalid)?.reason).toBe(ConditionReason.HostPathNotAllowed),
    );
    expect(condition(s, ConditionType.Invalid)?.message).toContain("may only be mounted read-only");
    await sbx.delete("greedy");
    await sbx.waitGone("greedy", 60_000);
  });

  it("an allowed host path is read-only for the workload (EROFS) unless its entry says :rw", async () => {
    await sbx.create("reader", {
      ...SLEEP,
      mounts: [
        { mountPath: "/host-ro", hostPath: { path: allowedRo } },
        { mountPath: "/host-rw", hostPath: { path: allowedRw, readOnly: false } },
      ],
    });
    const s = await waitRunning("reader");
    expect(await inWorkload(s, "cat /host-ro/config.txt")).toBe("from the host");
    const write = await inWorkload(s, "touch /host-ro/x 2>&1; echo rc=$?");
    expect(write).toContain("Read-only file system");
    expect(write).toContain("rc=1");
    const inspect = await engine.getContainer(containerNames(s).workload).inspect();
    const ro = inspect.Mounts.find((m) => m.Destination === "/host-ro");
    expect(ro).toMatchObject({ Type: "bind", RW: false });
    expect(inspect.Mounts.find((m) => m.Destination === "/host-rw")).toMatchObject({ RW: true });
    await sbx.delete("reader");
    await sbx.waitGone("reader", 60_000);
  });

  it("refuses Secret and ConfigMap mounts on docker with Unsupported", async () => {
    await sbx.create("creds", {
      ...SLEEP,
      mounts: [{ mountPath: "/creds", secret: { name: "x" } }],
    });
    const s = await sbx.waitFor("creds", (x) =>
      expect(condition(x, ConditionType.Invalid)?.reason).toBe(ConditionReason.Unsupported),
    );
    expect(condition(s, ConditionType.Invalid)?.message).toContain("pod backend only");
    await sbx.delete("creds");
    await sbx.waitGone("creds", 60_000);
  });
});
