// The shell with fake backends (the real ones: test/integration/snapshot-controller.test.ts
// against the apiserver, test/docker/snapshot-controller.test.ts against dockerd).
import { describe, expect, it } from "vitest";
import type { Sandbox } from "../api/sandbox.js";
import type { SandboxSnapshot, SnapshotStatus } from "../api/snapshot.js";
import { createLogger } from "../observability/logger.js";
import {
  type DockerSnapshotter,
  SnapshotBackendUnavailableError,
  SnapshotReconciler,
  type SnapshotReconcilerDeps,
} from "./controller.js";
import { SNAPSHOT_FINALIZER } from "./decide.js";

const CHECKSUM = `sha256:${"b".repeat(64)}`;
const recorded: SnapshotStatus = {
  phase: "Pending",
  reason: "Creating",
  backend: "docker",
  sourceSandboxUid: "u-1",
  sourceWorkspace: "vol-1",
};

function snapshot(over: Partial<SandboxSnapshot["metadata"]> = {}, status?: SnapshotStatus) {
  return {
    apiVersion: "sandboxing.dev/v1alpha1",
    kind: "SandboxSnapshot",
    metadata: {
      namespace: "ns",
      name: "snap",
      uid: "s-1",
      creationTimestamp: new Date().toISOString(),
      finalizers: [SNAPSHOT_FINALIZER],
      ...over,
    },
    spec: { source: { sandboxName: "agent-1" } },
    ...(status ? { status } : {}),
  } as SandboxSnapshot;
}

const source = {
  metadata: { namespace: "ns", name: "agent-1", uid: "u-1" },
  spec: { image: "busybox", backend: "docker", workspace: {} },
  status: { backend: "docker", workspace: { name: "vol-1" } },
} as unknown as Sandbox;

function harness(snap: SandboxSnapshot, docker: Partial<DockerSnapshotter> = {}) {
  const calls: string[] = [];
  const writes: SnapshotStatus[] = [];
  const events: string[] = [];
  const fakeDocker: DockerSnapshotter = {
    volumeExists: async () => true,
    take: async (ref, volume) => {
      calls.push(`take ${ref.name} ${volume}`);
      return { handle: "sbx.ns.snap.snap.s-1", sizeBytes: 2048, checksum: CHECKSUM };
    },
    remove: async (ref) => {
      calls.push(`remove ${ref.uid}`);
    },
    isUnavailable: (err) => (err as { code?: string }).code === "ECONNREFUSED",
    ...docker,
  };
  const deps = {
    snapshots: { get: (k: string) => (k === "ns/snap" ? snap : undefined) },
    sandboxes: { get: (k: string) => (k === "ns/agent-1" ? source : undefined) },
    status: {
      write: async (_o: unknown, s: SnapshotStatus) => {
        writes.push(s);
        return "written";
      },
    },
    finalizers: {
      add: async (_o: unknown, f: string) => {
        calls.push(`add ${f}`);
      },
      remove: async (_o: unknown, f: string) => {
        calls.push(`removeFinalizer ${f}`);
      },
    },
    events: {
      record: (_o: unknown, type: string, reason: string) => events.push(`${type} ${reason}`),
    },
    defaultBackend: "pod",
    docker: fakeDocker,
    log: createLogger({ level: "silent" }),
  } as unknown as SnapshotReconcilerDeps;
  return { r: new SnapshotReconciler(deps), calls, writes, events };
}

const signal = new AbortController().signal;

describe("SnapshotReconciler (fake backend)", () => {
  it("takes the recorded copy and writes Ready with the checksum", async () => {
    const h = harness(snapshot({}, recorded));
    await h.r.reconcile("ns/snap", signal);
    expect(h.calls).toEqual(["take snap vol-1"]);
    expect(h.writes[0]).toMatchObject({
      phase: "Ready",
      handle: "sbx.ns.snap.snap.s-1",
      checksum: CHECKSUM,
      sizeBytes: 2048,
    });
    expect(h.events).toEqual(["Normal SnapshotReady"]);
  });

  it("adds the finalizer before anything is made", async () => {
    const h = harness(snapshot({ finalizers: [] }));
    await h.r.reconcile("ns/snap", signal);
    expect(h.calls).toEqual([`add ${SNAPSHOT_FINALIZER}`]);
    expect(h.writes).toEqual([]);
  });

  it("on deletion removes the snapshot volume, then the finalizer", async () => {
    const h = harness(snapshot({ deletionTimestamp: new Date() }, { ...recorded, phase: "Ready" }));
    await h.r.reconcile("ns/snap", signal);
    expect(h.calls).toEqual(["remove s-1", `removeFinalizer ${SNAPSHOT_FINALIZER}`]);
  });

  it("keeps the finalizer while the daemon is unreachable (retried)", async () => {
    const down = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
    const h = harness(snapshot({ deletionTimestamp: new Date() }), {
      remove: async () => {
        throw down;
      },
    });
    await expect(h.r.reconcile("ns/snap", signal)).rejects.toBeInstanceOf(
      SnapshotBackendUnavailableError,
    );
    expect(h.calls).toEqual([]);
  });

  it("an unreachable daemon during the copy is BackendUnavailable and retried", async () => {
    const down = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
    const h = harness(snapshot({}, recorded), {
      take: async () => {
        throw down;
      },
    });
    await expect(h.r.reconcile("ns/snap", signal)).rejects.toBeInstanceOf(
      SnapshotBackendUnavailableError,
    );
    expect(h.writes[0]).toMatchObject({ phase: "Pending", reason: "BackendUnavailable" });
  });

  it("an error the daemon answers with fails the snapshot (not thrown)", async () => {
    const h = harness(snapshot({}, recorded), {
      take: async () => {
        throw Object.assign(new Error("no space left on device"), { statusCode: 500 });
      },
    });
    await h.r.reconcile("ns/snap", signal);
    expect(h.writes[0]).toMatchObject({ phase: "Failed", reason: "SnapshotFailed" });
    expect(h.writes[0]?.message).toContain("no space left on device");
    expect(h.events).toEqual(["Warning SnapshotFailed"]);
  });

  it("never copies a workspace volume that does not exist (a mount would make it empty)", async () => {
    const h = harness(snapshot({}, recorded), { volumeExists: async () => false });
    const out = await h.r.reconcile("ns/snap", signal);
    expect(h.calls).toEqual([]);
    expect(h.writes[0]).toMatchObject({ phase: "Pending", reason: "Creating" });
    expect(out?.requeueAfter).toBeGreaterThan(0);
  });

  it("a Ready snapshot is never taken again", async () => {
    const h = harness(snapshot({}, { ...recorded, phase: "Ready", handle: "h" }));
    await h.r.reconcile("ns/snap", signal);
    expect(h.calls).toEqual([]);
    expect(h.writes).toEqual([]);
  });

  it("a snapshot whose spec the cache holds malformed is judged, never a crash", async () => {
    const bad = { ...snapshot(), spec: {} } as unknown as SandboxSnapshot;
    const h = harness(bad);
    await h.r.reconcile("ns/snap", signal);
    expect(h.writes[0]).toMatchObject({ phase: "Pending", reason: "SourceNotFound" });
  });
});
