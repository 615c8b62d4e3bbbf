// Idle suspension on the docker backend across controller restarts, against
// the real dockerd and apiserver: an idle-suspended sandbox costs no API write
// by the controller (counted in the apiserver's audit log) over two idle
// periods, a restart included; a restart in the middle of a suspension (the
// workload removed, the sidecar not yet) and in the middle of a resume (the
// sidecar created, the workload not yet) loses nothing: the next controller
// finishes the job and the workspace holds what was written.
//
// The suspension's middle is made by hand while no controller runs (the
// backend removes the workload first, then the sidecar: that state, exactly);
// the resume's middle is caught by stopping the controller as soon as its
// sidecar exists without a workload (the sidecar's lockdown takes seconds).
import type Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "../../packages/sdk/src/index.js";
import { DockerLabels, Role } from "../../src/backends/docker/names.js";
import { buildAgent } from "../support/agent.js";
import { describeWrites, writesBy } from "../support/audit.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { ensureDockerd, removeOwnedBy, SANDBOX_IMAGE } from "../support/docker.js";
import { eventually } from "../support/eventually.js";
import { idleSuspend, suspendedForIdleness } from "../support/idle.js";
import { type RunningOperator, startDockerOperator } from "../support/operator.js";
import { isReady, SandboxClient } from "../support/sandboxes.js";

const kc = kubeConfig();
const OWNER = `test-idle-restart-${process.pid}`;
const OPERATOR_USER = "operator-1";
let ns: Awaited<ReturnType<typeof testNamespace>>;
let sbx: SandboxClient;
let engine: Docker;
let operator: RunningOperator | undefined;
const boxes: Sandbox[] = [];

const start = async () => {
  operator = await startDockerOperator({
    namespace: ns.name,
    user: OPERATOR_USER,
    engine,
    owner: OWNER,
    upstreamDns: "127.0.0.1",
  });
};
const stop = async () => {
  await operator?.stop();
  operator = undefined;
};

beforeAll(async () => {
  engine = await ensureDockerd();
  buildAgent();
  ns = await testNamespace(kc, "idlerst");
  sbx = new SandboxClient(kc, ns.name);
  await start();
});
afterAll(async () => {
  for (const b of boxes) b.close();
  await stop();
  await removeOwnedBy(OWNER);
  await ns?.delete();
}, 120_000);

/** Containers of a sandbox, by role. */
async function roles(name: string): Promise<string[]> {
  const list = await engine.listContainers({
    all: true,
    filters: { label: [`${DockerLabels.owner}=${OWNER}`, `${DockerLabels.sandbox}=${name}`] },
  });
  return list.map((c) => c.Labels[DockerLabels.role] ?? "?").sort();
}

async function create(name: string, idleTimeout: string): Promise<Sandbox> {
  const box = await Sandbox.create(
    { image: SANDBOX_IMAGE, command: ["sleep", "infinity"], idleTimeout, workspace: {} },
    { kubeconfig: kc, namespace: ns.name, name, docker: engine },
  );
  boxes.push(box);
  return box;
}

const WRITE = "head -c 1048576 /dev/urandom > /workspace/blob && sha256sum /workspace/blob";
const CHECK = "sha256sum /workspace/blob";

describe("idle suspension across controller restarts (docker backend)", () => {
  it("an idle-suspended sandbox costs no controller write over two idle periods, a restart included", async () => {
    const box = await create("sleeper", "10s");
    const wrote = await box.exec(["sh", "-c", WRITE]);
    await sbx.waitFor("sleeper", suspendedForIdleness, 60_000);
    await eventually(async () => expect(await roles("sleeper")).toEqual([]), { timeout: 30_000 });

    const quietFrom = await writesBy(OPERATOR_USER, ns.name);
    const rv = (await sbx.get("sleeper"))?.metadata.resourceVersion;
    await new Promise((r) => setTimeout(r, 10_000));
    await stop();
    await start();
    await new Promise((r) => setTimeout(r, 12_000));
    const quiet = (await writesBy(OPERATOR_USER, ns.name)) - quietFrom;
    expect(quiet, await describeWrites(OPERATOR_USER, ns.name)).toBe(0);
    expect((await sbx.get("sleeper"))?.metadata.resourceVersion).toBe(rv);
    expect(await roles("sleeper")).toEqual([]);

    // Then a call wakes it, with its data.
    const checked = await box.exec(["sh", "-c", CHECK]);
    expect(checked.stdout).toBe(wrote.stdout);
  }, 180_000);

  it("a restart in the middle of a suspension (workload removed, sidecar left) finishes it", async () => {
    const box = await create("halfway", "1h");
    const wrote = await box.exec(["sh", "-c", WRITE]);
    expect(await roles("halfway")).toEqual([Role.sidecar, Role.workload].sort());
    await stop();
    await idleSuspend(sbx, "halfway");
    // What the backend leaves after its first removal: the workload gone, the sidecar not yet.
    const [workload] = await engine.listContainers({
      all: true,
      filters: {
        label: [
          `${DockerLabels.owner}=${OWNER}`,
          `${DockerLabels.sandbox}=halfway`,
          `${DockerLabels.role}=${Role.workload}`,
        ],
      },
    });
    await engine.getContainer(workload!.Id).remove({ force: true, v: true });
    expect(await roles("halfway")).toEqual([Role.sidecar]);
    await start();
    const s = await sbx.waitFor("halfway", suspendedForIdleness, 60_000);
    expect(s.status?.workspace?.name).toBeDefined();
    await eventually(async () => expect(await roles("halfway")).toEqual([]), { timeout: 30_000 });
    const checked = await box.exec(["sh", "-c", CHECK]);
    expect(checked.stdout).toBe(wrote.stdout);
  }, 180_000);

  it("a restart in the middle of a resume (sidecar created, workload not yet) makes one set of containers", async () => {
    const box = await create("wakeful", "1h");
    const wrote = await box.exec(["sh", "-c", WRITE]);
    await idleSuspend(sbx, "wakeful");
    await sbx.waitFor("wakeful", suspendedForIdleness, 60_000);
    await eventually(async () => expect(await roles("wakeful")).toEqual([]), { timeout: 30_000 });

    await sbx.patchSpec("wakeful", { suspended: false });
    await eventually(async () => expect(await roles("wakeful")).toEqual([Role.sidecar]), {
      timeout: 60_000,
      interval: 20,
    });
    await stop();
    const caught = await roles("wakeful");
    await start();
    await sbx.waitFor("wakeful", isReady, 120_000);
    expect(await roles("wakeful")).toEqual([Role.sidecar, Role.workload].sort());
    const checked = await box.exec(["sh", "-c", CHECK]);
    expect(checked.stdout).toBe(wrote.stdout);
    console.log(`containers when the controller stopped mid-resume: ${caught.join(", ")}`);
  }, 180_000);
});
