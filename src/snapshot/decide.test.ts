import { describe, expect, it } from "vitest";
import type { SnapshotStatus } from "../api/snapshot.js";
import type { BackendName } from "../backends/backend.js";
import {
  decideSnapshot,
  eventFor,
  ready,
  SNAPSHOT_FINALIZER,
  type SnapshotInput,
  SOURCE_GRACE_MS,
  type SourceView,
} from "./decide.js";

const NOW = Date.parse("2026-11-30T06:00:00Z");
const both = new Set<BackendName>(["pod", "docker"]);

const src = (over: Partial<SourceView> = {}): SourceView => ({
  name: "agent-1",
  uid: "u-1",
  deleting: false,
  backend: "docker",
  hasWorkspace: true,
  workspace: "sbx.ns.agent-1.workspace",
  ...over,
});

const recorded: SnapshotStatus = {
  phase: "Pending",
  reason: "Creating",
  backend: "docker",
  sourceSandboxUid: "u-1",
  sourceWorkspace: "sbx.ns.agent-1.workspace",
};

function input(over: {
  status?: SnapshotStatus;
  source?: SourceView | null;
  finalizers?: string[];
  deleting?: boolean;
  ageMs?: number;
  backends?: Set<BackendName>;
}): SnapshotInput {
  return {
    snapshot: {
      name: "agent-1",
      creationMs: NOW - (over.ageMs ?? 60_000),
      deleting: over.deleting ?? false,
      finalizers: over.finalizers ?? [SNAPSHOT_FINALIZER],
      status: over.status,
    },
    source: over.source === null ? undefined : (over.source ?? src()),
    backends: over.backends ?? both,
    nowMs: NOW,
  };
}

describe("decideSnapshot", () => {
  const cases: {
    name: string;
    in: SnapshotInput;
    action: string;
    phase?: string;
    reason?: string;
    requeue?: boolean;
  }[] = [
    {
      name: "deleting with the finalizer: remove the copy",
      in: input({ deleting: true, status: { phase: "Ready" } }),
      action: "cleanup",
    },
    {
      name: "deleting without the finalizer (pod, or never begun): nothing",
      in: input({ deleting: true, finalizers: [] }),
      action: "none",
    },
    {
      name: "Ready is final: never taken again, even when the source changed",
      in: input({ status: { ...recorded, phase: "Ready" }, source: src({ uid: "u-2" }) }),
      action: "none",
    },
    {
      name: "Failed is final",
      in: input({ status: { phase: "Failed", reason: "NoWorkspace" } }),
      action: "none",
    },
    {
      name: "a young snapshot waits for a source its cache has not seen yet",
      in: input({ source: null, ageMs: 1_000 }),
      action: "none",
      phase: "Pending",
      reason: "SourceNotFound",
      requeue: true,
    },
    {
      name: "a missing source after the grace fails",
      in: input({ source: null, ageMs: SOURCE_GRACE_MS + 1 }),
      action: "none",
      phase: "Failed",
      reason: "SourceNotFound",
    },
    {
      name: "a source deleted after the copy began fails at once",
      in: input({ source: null, ageMs: 1_000, status: recorded }),
      action: "none",
      phase: "Failed",
      reason: "SourceNotFound",
    },
    {
      name: "a source being deleted fails",
      in: input({ source: src({ deleting: true }) }),
      action: "none",
      phase: "Failed",
      reason: "SourceNotFound",
    },
    {
      name: "another incarnation of the source is not the one the copy began from",
      in: input({ status: recorded, source: src({ uid: "u-2" }) }),
      action: "none",
      phase: "Failed",
      reason: "SourceNotFound",
    },
    {
      name: "a source without spec.workspace: NoWorkspace",
      in: input({ source: src({ hasWorkspace: false, workspace: undefined }) }),
      action: "none",
      phase: "Failed",
      reason: "NoWorkspace",
    },
    {
      name: "a backend this operator does not serve: SnapshotUnsupported",
      in: input({ backends: new Set(["pod"]) }),
      action: "none",
      phase: "Failed",
      reason: "SnapshotUnsupported",
    },
    {
      name: "a workspace not named yet is waited for",
      in: input({ source: src({ workspace: undefined }) }),
      action: "none",
      phase: "Pending",
      reason: "Creating",
    },
    {
      name: "docker: the finalizer comes before anything is made",
      in: input({ finalizers: [] }),
      action: "addFinalizer",
    },
    {
      name: "docker: then the source is recorded",
      in: input({}),
      action: "none",
      phase: "Pending",
      reason: "Creating",
    },
    {
      name: "docker: then the copy is taken",
      in: input({ status: recorded }),
      action: "take",
    },
    {
      name: "docker: a retry after BackendUnavailable takes the copy again",
      in: input({ status: { ...recorded, reason: "BackendUnavailable" } }),
      action: "take",
    },
    {
      name: "pod: no finalizer (the VolumeSnapshot is owned), the source recorded",
      in: input({ finalizers: [], source: src({ backend: "pod", workspace: "sbx-agent-1-ws" }) }),
      action: "none",
      phase: "Pending",
      reason: "Creating",
    },
    {
      name: "pod: then taken (and looked at again while pending)",
      in: input({
        finalizers: [],
        source: src({ backend: "pod", workspace: "sbx-agent-1-ws" }),
        status: { ...recorded, backend: "pod", sourceWorkspace: "sbx-agent-1-ws" },
      }),
      action: "take",
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const d = decideSnapshot(c.in);
      expect(d.action.type).toBe(c.action);
      expect(d.status?.phase).toBe(c.phase);
      expect(d.status?.reason).toBe(c.reason);
      expect(d.requeueAfterMs !== undefined).toBe(!!c.requeue);
      if (d.status) {
        const cond = d.status.conditions?.find((x) => x.type === "Ready");
        expect(cond?.status).toBe("False");
        expect(cond?.reason).toBe(c.reason);
        expect(d.status.message).toBeTruthy();
      }
    });
  }

  it("records backend, source UID and workspace before taking", () => {
    const d = decideSnapshot(input({}));
    expect(d.status).toMatchObject({
      backend: "docker",
      sourceSandboxUid: "u-1",
      sourceWorkspace: "sbx.ns.agent-1.workspace",
    });
    expect(decideSnapshot(input({ status: d.status })).action).toEqual({
      type: "take",
      backend: "docker",
      workspace: "sbx.ns.agent-1.workspace",
    });
  });

  it("ready() records the copy and a True condition; the event fires once", () => {
    const s = ready(
      recorded,
      { handle: "h", sizeBytes: 10, checksum: `sha256:${"a".repeat(64)}` },
      NOW,
    );
    expect(s).toMatchObject({
      phase: "Ready",
      reason: "SnapshotReady",
      handle: "h",
      sizeBytes: 10,
      checksum: `sha256:${"a".repeat(64)}`,
      readyAt: "2026-11-30T06:00:00Z",
    });
    expect(s.conditions?.[0]).toMatchObject({ type: "Ready", status: "True" });
    expect(eventFor(recorded, s)).toMatchObject({ type: "Normal", reason: "SnapshotReady" });
    expect(eventFor(s, s)).toBeUndefined();
  });

  it("a failure is a Warning event naming the reason", () => {
    const d = decideSnapshot(input({ source: src({ hasWorkspace: false }) }));
    expect(eventFor(undefined, d.status!)).toMatchObject({
      type: "Warning",
      reason: "NoWorkspace",
    });
  });
});
