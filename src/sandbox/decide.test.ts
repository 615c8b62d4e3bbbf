// Every path of the reconciler's decisions, as a table (in the manner of
// agent-sandbox's TestReconcile): a Sandbox as stored, what the backend answered,
// the time; the decision expected.
import { describe, expect, it } from "vitest";
import { ConditionReason, ConditionType } from "../api/conditions.js";
import type { Condition, SandboxStatus } from "../api/sandbox-status.js";
import type { Observation } from "../backends/backend.js";
import {
  type DecideConfig,
  type Decision,
  decide,
  MAX_REQUEUE_MS,
  type Observed,
  REFUSAL_RETRY_MAX_MS,
  REFUSAL_RETRY_MIN_MS,
  SANDBOX_FINALIZER,
  TEARDOWN_POLL_MS,
} from "./decide.js";
import { readSandbox } from "./read.js";

const CREATED = "2030-01-01T00:00:00Z";
const T0 = Date.parse(CREATED);
const at = (seconds: number) => new Date(T0 + seconds * 1000);
const TTL = 600;
const STALL = 60;

const config = (over: Partial<DecideConfig> = {}): DecideConfig => ({
  defaultBackend: "pod",
  backends: { pod: { needsFinalizer: false }, docker: { needsFinalizer: true } },
  stallTimeoutSeconds: STALL,
  ...over,
});

interface StoredInput {
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  finalizers?: string[];
  deleting?: boolean;
  annotations?: Record<string, string>;
  generation?: number;
}

function stored({
  spec = {},
  status,
  finalizers,
  deleting,
  annotations,
  generation = 1,
}: StoredInput = {}) {
  return {
    apiVersion: "sandboxing.dev/v1alpha1",
    kind: "Sandbox",
    metadata: {
      name: "s",
      namespace: "ns",
      uid: "uid-1",
      generation,
      annotations,
      creationTimestamp: CREATED,
      finalizers,
      deletionTimestamp: deleting ? "2030-01-01T00:01:00Z" : undefined,
    },
    spec: { image: "busybox", lifetime: { ttlSeconds: TTL }, ...spec },
    status,
  };
}

const running: Observation = {
  phase: "Running",
  ready: true,
  reason: ConditionReason.Running,
  message: "the workload is running",
  podName: "s",
};
const succeeded: Observation = {
  phase: "Succeeded",
  ready: false,
  reason: ConditionReason.Succeeded,
  message: "the workload exited with code 0",
  exitCode: 0,
};
const pulling: Observation = {
  phase: "Pending",
  ready: false,
  reason: ConditionReason.ImagePullBackOff,
  message: "container sandbox: Back-off pulling image",
  stalled: true,
};
const refusedCreate: Observation = {
  phase: "Pending",
  ready: false,
  reason: ConditionReason.Rejected,
  message: 'pods "s" is forbidden: exceeded quota',
  stalled: true,
  retry: true,
};

const cond = (type: string, status: "True" | "False", since: number, reason = "X"): Condition => ({
  type,
  status,
  reason,
  message: "m",
  lastTransitionTime: at(since).toISOString().replace(".000Z", "Z"),
});

const condition = (status: SandboxStatus | undefined, type: string) =>
  status?.conditions?.find((c) => c.type === type);

interface Case {
  name: string;
  sandbox: StoredInput;
  observed?: Observed;
  now: number;
  config?: Partial<DecideConfig>;
  /** The decision, or a check of it. */
  want: Decision | ((d: Decision) => void);
}

const cases: Case[] = [
  // ---- create and run
  { name: "create: asks the backend to ensure", sandbox: {}, now: 1, want: { probe: "ensure" } },
  {
    name: "running: Ready, and a look again at expiry",
    sandbox: {},
    observed: { ensured: running },
    now: 1,
    want: (d) => {
      expect(d.probe).toBeUndefined();
      if (d.probe) return;
      expect(d.status?.phase).toBe("Running");
      expect(condition(d.status, ConditionType.Ready)?.status).toBe("True");
      expect(condition(d.status, ConditionType.Expired)?.status).toBe("False");
      expect(d.status?.expiresAt).toBe("2030-01-01T00:10:00Z");
      expect(d.actions).toEqual([]);
      expect(d.requeueAfter).toBe((TTL - 1) * 1000 + 1);
    },
  },
  {
    name: "running, far from expiry: the timer is capped",
    sandbox: { spec: { lifetime: { ttlSeconds: 86_400 } } },
    observed: { ensured: running },
    now: 1,
    want: (d) => expect(!d.probe && d.requeueAfter).toBe(MAX_REQUEUE_MS),
  },
  {
    name: "a hand-written Succeeded on a running sandbox: observed, then corrected",
    sandbox: { status: { phase: "Succeeded" } },
    now: 1,
    want: { probe: "observe" },
  },
  {
    name: "a hand-written Succeeded, the workload running: phase Running again",
    sandbox: { status: { phase: "Succeeded" } },
    observed: { observed: running },
    now: 1,
    want: (d) => expect(!d.probe && d.status?.phase).toBe("Running"),
  },
  // ---- finished
  {
    name: "finished: the record is kept while the workload is there",
    sandbox: { status: { phase: "Succeeded", exitCode: 0 } },
    observed: { observed: succeeded },
    now: 10,
    want: (d) => {
      if (d.probe) throw new Error("probe");
      expect(d.status).toMatchObject({ phase: "Succeeded", exitCode: 0 });
      expect(d.requeueAfter).toBe((TTL - 10) * 1000 + 1);
    },
  },
  {
    name: "finished, the backend tells nothing (unreachable, half removed): the record stands",
    sandbox: { status: { phase: "Failed", exitCode: 3 } },
    observed: {
      observed: {
        phase: "Pending",
        ready: false,
        reason: ConditionReason.BackendUnavailable,
        message: "the Docker daemon cannot be reached",
      },
    },
    now: 10,
    want: { actions: [], requeueAfter: (TTL - 10) * 1000 + 1 },
  },
  {
    name: "finished, nothing left to observe: the record stands, no write",
    sandbox: { status: { phase: "Succeeded", exitCode: 0 } },
    observed: { observed: null },
    now: 10,
    want: { actions: [], requeueAfter: (TTL - 10) * 1000 + 1 },
  },
  // ---- stalls
  {
    name: "stalled, within the grace period: a look again when it ends",
    sandbox: { status: { phase: "Pending", conditions: [cond("Stalled", "True", 0)] } },
    observed: { ensured: pulling },
    now: 20,
    want: (d) => {
      if (d.probe) throw new Error("probe");
      expect(condition(d.status, ConditionType.Stalled)?.status).toBe("True");
      expect(d.status?.phase).toBe("Pending");
      expect(d.requeueAfter).toBe((STALL - 20) * 1000 + 1);
    },
  },
  {
    name: "stalled past the grace period: Failed, then removed",
    sandbox: { status: { phase: "Pending", conditions: [cond("Stalled", "True", 0)] } },
    observed: { ensured: pulling },
    now: STALL,
    want: (d) => {
      if (d.probe) throw new Error("probe");
      expect(d.status).toMatchObject({
        phase: "Failed",
        reason: ConditionReason.ImagePullBackOff,
        finishedAt: "2030-01-01T00:01:00Z",
      });
      expect(d.status?.message).toContain(`stalled for more than ${STALL}s`);
      expect(d.requeueAfter).toBe(TEARDOWN_POLL_MS + 1);
    },
  },
  {
    name: "failed for stalling: the workload is removed",
    sandbox: { status: { phase: "Failed", conditions: [cond("Stalled", "True", 0)] } },
    now: 70,
    want: { probe: "remove" },
  },
  {
    name: "failed for stalling, removal under way: poll",
    sandbox: { status: { phase: "Failed", conditions: [cond("Stalled", "True", 0)] } },
    observed: { removed: false },
    now: 70,
    want: { actions: [], requeueAfter: TEARDOWN_POLL_MS + 1 },
  },
  {
    name: "failed for stalling, removed: wait for expiry",
    sandbox: { status: { phase: "Failed", conditions: [cond("Stalled", "True", 0)] } },
    observed: { removed: true },
    now: 70,
    want: { actions: [], requeueAfter: (TTL - 70) * 1000 + 1 },
  },
  // ---- refusals
  {
    name: "a refused create: a condition with the apiserver's words, retried soon",
    sandbox: {},
    observed: { ensured: refusedCreate },
    now: 1,
    want: (d) => {
      if (d.probe) throw new Error("probe");
      expect(condition(d.status, ConditionType.Ready)).toMatchObject({
        status: "False",
        reason: ConditionReason.Rejected,
        message: 'pods "s" is forbidden: exceeded quota',
      });
      expect(condition(d.status, ConditionType.Stalled)?.status).toBe("True");
      expect(d.requeueAfter).toBe(REFUSAL_RETRY_MIN_MS + 1);
    },
  },
  {
    name: "a refusal that lasts: retried as long again, at most every 30 s",
    sandbox: { status: { phase: "Pending", conditions: [cond("Stalled", "True", 0)] } },
    observed: { ensured: refusedCreate },
    now: 50,
    config: { stallTimeoutSeconds: 300 },
    want: (d) => expect(!d.probe && d.requeueAfter).toBe(REFUSAL_RETRY_MAX_MS + 1),
  },
  {
    name: "a refusal right before expiry: expiry comes first",
    sandbox: { status: { phase: "Pending", conditions: [cond("Stalled", "True", 500)] } },
    observed: { ensured: refusedCreate },
    now: TTL - 2,
    config: { stallTimeoutSeconds: 3000 },
    want: (d) => expect(!d.probe && d.requeueAfter).toBe(2000 + 1),
  },
  {
    name: "the backend refuses the spec: Invalid, and a look again at expiry",
    sandbox: {},
    observed: { refused: { reason: ConditionReason.Unsupported, message: "no ports on docker" } },
    now: 1,
    want: (d) => {
      if (d.probe) throw new Error("probe");
      expect(condition(d.status, ConditionType.Invalid)).toMatchObject({
        status: "True",
        reason: ConditionReason.Unsupported,
      });
      expect(d.requeueAfter).toBe((TTL - 1) * 1000 + 1);
    },
  },
  // ---- expiry
  {
    name: "expiry, Delete: an Event and the Sandbox deleted",
    sandbox: {},
    now: TTL,
    want: {
      actions: [
        {
          type: "event",
          event: {
            type: "Normal",
            reason: "Expired",
            message: "the lifetime ran out; deleting the sandbox",
          },
        },
        { type: "delete" },
      ],
    },
  },
  {
    name: "expiry, Retain: the workload is removed first",
    sandbox: { spec: { lifetime: { ttlSeconds: TTL, onExpire: "Retain" } } },
    now: TTL,
    want: { probe: "remove" },
  },
  {
    name: "expiry, Retain, removed: Expired, with an Event",
    sandbox: {
      spec: { lifetime: { ttlSeconds: TTL, onExpire: "Retain" } },
      status: { phase: "Running" },
    },
    observed: { removed: true },
    now: TTL + 1,
    want: (d) => {
      if (d.probe) throw new Error("probe");
      expect(d.status).toMatchObject({
        phase: "Expired",
        reason: ConditionReason.Expired,
        expiresAt: "2030-01-01T00:10:00Z",
      });
      expect(condition(d.status, ConditionType.Expired)).toMatchObject({
        status: "True",
        reason: ConditionReason.LifetimeElapsed,
      });
      expect(d.actions).toEqual([
        {
          type: "event",
          event: expect.objectContaining({ reason: "Expired" }),
        },
      ]);
      expect(d.requeueAfter).toBeUndefined();
    },
  },
  {
    name: "expiry, Retain, still removing: poll, no second Event",
    sandbox: {
      spec: { lifetime: { ttlSeconds: TTL, onExpire: "Retain" } },
      status: { phase: "Expired" },
    },
    observed: { removed: false },
    now: TTL + 1,
    want: (d) => {
      if (d.probe) throw new Error("probe");
      expect(d.actions).toEqual([]);
      expect(d.requeueAfter).toBe(TEARDOWN_POLL_MS);
    },
  },
  {
    name: "expiry at an absolute time written in lower case",
    sandbox: { spec: { lifetime: { expiresAt: "2030-01-01t00:05:00z" } } },
    now: 300,
    want: (d) => expect(!d.probe && d.actions.map((a) => a.type)).toEqual(["event", "delete"]),
  },
  {
    name: "expiry does not wait for a status the controller cannot read",
    sandbox: {
      status: {
        phase: "Running",
        finishedAt: "not a time",
        conditions: [{ type: "Ready", observedGeneration: 2 ** 63 }],
      },
    },
    now: TTL,
    want: (d) => expect(!d.probe && d.actions.map((a) => a.type)).toEqual(["event", "delete"]),
  },
  {
    name: "an unreadable status is recomputed from what is observed",
    sandbox: { status: { phase: "Running", finishedAt: "2024-13-01T00:00:00Z" } },
    observed: { ensured: running },
    now: 1,
    want: (d) => {
      if (d.probe) throw new Error("probe");
      expect(d.status?.phase).toBe("Running");
      expect(d.status?.finishedAt).toBeUndefined();
      expect(condition(d.status, ConditionType.Invalid)).toBeUndefined();
    },
  },
  // ---- deletion
  {
    name: "deletion, no finalizer of ours: nothing to do",
    sandbox: { deleting: true },
    now: 1,
    want: { actions: [] },
  },
  {
    name: "deletion with our finalizer: the backend removes everything",
    sandbox: { deleting: true, finalizers: [SANDBOX_FINALIZER], spec: { backend: "docker" } },
    now: 1,
    want: { probe: "remove" },
  },
  {
    name: "deletion, removal under way: poll",
    sandbox: { deleting: true, finalizers: [SANDBOX_FINALIZER], spec: { backend: "docker" } },
    observed: { removed: false },
    now: 1,
    want: { actions: [], requeueAfter: TEARDOWN_POLL_MS + 1 },
  },
  {
    name: "deletion, all removed: the finalizer goes",
    sandbox: { deleting: true, finalizers: [SANDBOX_FINALIZER], spec: { backend: "docker" } },
    observed: { removed: true },
    now: 1,
    want: { actions: [{ type: "removeFinalizer" }] },
  },
  {
    name: "deletion of an invalid sandbox still releases it",
    sandbox: {
      deleting: true,
      finalizers: [SANDBOX_FINALIZER],
      spec: { backend: "docker", image: "" },
    },
    observed: { removed: true },
    now: 1,
    want: { actions: [{ type: "removeFinalizer" }] },
  },
  {
    name: "deletion, backend no longer enabled: the finalizer goes",
    sandbox: { deleting: true, finalizers: [SANDBOX_FINALIZER], spec: { backend: "docker" } },
    config: { backends: { pod: { needsFinalizer: false } } },
    now: 1,
    want: { actions: [{ type: "removeFinalizer" }] },
  },
  {
    name: "a backend that needs the finalizer gets it first",
    sandbox: { spec: { backend: "docker" } },
    now: 1,
    want: { actions: [{ type: "addFinalizer" }] },
  },
  // ---- invalid and unsupported
  {
    name: "invalid: the field's path and why, and a look again at expiry",
    sandbox: { spec: { image: "has space" } },
    now: 1,
    want: (d) => {
      if (d.probe) throw new Error("probe");
      expect(d.invalid?.reason).toBe(ConditionReason.InvalidSpec);
      expect(d.invalid?.message).toMatch(/^spec\.image: /);
      expect(condition(d.status, ConditionType.Invalid)?.status).toBe("True");
      expect(d.status?.phase).toBe("Pending");
      expect(d.requeueAfter).toBe((TTL - 1) * 1000 + 1);
    },
  },
  {
    name: "invalid, at expiry: deleted all the same",
    sandbox: { spec: { image: "has space" } },
    now: TTL,
    want: (d) => expect(!d.probe && d.actions.map((a) => a.type)).toEqual(["event", "delete"]),
  },
  {
    name: "unsupported backend: a condition, not a retry",
    sandbox: { spec: { backend: "docker" } },
    config: { backends: { pod: { needsFinalizer: false } } },
    now: 1,
    want: (d) => {
      if (d.probe) throw new Error("probe");
      expect(d.invalid).toEqual({
        reason: ConditionReason.Unsupported,
        message: 'backend "docker" is not enabled on this operator',
      });
      expect(d.requeueAfter).toBe((TTL - 1) * 1000 + 1);
    },
  },
  {
    name: "valid again: Invalid turns False",
    sandbox: {
      status: { phase: "Pending", conditions: [cond("Invalid", "True", 0, "InvalidSpec")] },
    },
    observed: { ensured: running },
    now: 5,
    want: (d) =>
      expect(!d.probe && condition(d.status, ConditionType.Invalid)).toMatchObject({
        status: "False",
        reason: ConditionReason.Valid,
      }),
  },

  // ---- suspend and resume
  {
    name: "suspend requested: asks the backend to suspend",
    sandbox: { spec: { suspended: true }, status: { phase: "Running" } },
    now: 5,
    want: { probe: "suspend" },
  },
  {
    name: "suspending, workload still going: Ready=False Suspending, phase kept, poll",
    sandbox: {
      spec: { suspended: true },
      status: { phase: "Running", podName: "s", ip: "10.0.0.5", startedAt: CREATED },
    },
    observed: { suspended: { released: false } },
    now: 5,
    want: (d) => {
      if (d.probe) throw new Error("probe");
      expect(d.status?.phase).toBe("Running");
      expect(condition(d.status, ConditionType.Ready)).toMatchObject({
        status: "False",
        reason: ConditionReason.Suspending,
      });
      expect(condition(d.status, ConditionType.Suspended)).toMatchObject({
        status: "False",
        reason: ConditionReason.Suspending,
      });
      expect(d.status?.podName).toBeUndefined();
      expect(d.status?.ip).toBeUndefined();
      expect(d.status?.suspendedAt).toBeUndefined();
      expect(d.requeueAfter).toBe(TEARDOWN_POLL_MS + 1);
    },
  },
  {
    name: "suspended: phase Suspended, suspendedAt, workspace kept, a look again only at expiry",
    sandbox: {
      spec: { suspended: true },
      status: {
        phase: "Running",
        containerId: "abc",
        endpoints: [{ name: "http", port: 1, host: "h" }],
        workspace: { name: "old" },
        conditions: [cond("Stalled", "False", 0, "Progressing")],
      },
    },
    observed: {
      suspended: { released: true, workspace: { name: "ws-1", retentionPolicy: "Retain" } },
    },
    now: 5,
    want: (d) => {
      if (d.probe) throw new Error("probe");
      expect(d.status?.phase).toBe("Suspended");
      expect(d.status?.suspendedAt).toBe("2030-01-01T00:00:05Z");
      expect(d.status?.workspace).toEqual({ name: "ws-1", retentionPolicy: "Retain" });
      expect(d.status?.containerId).toBeUndefined();
      expect(d.status?.endpoints).toBeUndefined();
      expect(d.status?.observedGeneration).toBe(1);
      expect(d.status?.expiresAt).toBe("2030-01-01T00:10:00Z");
      expect(condition(d.status, ConditionType.Suspended)).toMatchObject({
        status: "True",
        reason: ConditionReason.Suspended,
      });
      expect(condition(d.status, ConditionType.Ready)?.reason).toBe(ConditionReason.Suspended);
      expect(condition(d.status, ConditionType.Stalled)).toBeUndefined();
      expect(d.actions).toEqual([]);
      expect(d.requeueAfter).toBe((TTL - 5) * 1000 + 1);
    },
  },
  {
    name: "suspended, workspace unknown to the backend: the recorded one stays",
    sandbox: { spec: { suspended: true }, status: { phase: "Running", workspace: { name: "w" } } },
    observed: { suspended: { released: true } },
    now: 5,
    want: (d) => expect(!d.probe && d.status?.workspace).toEqual({ name: "w" }),
  },
  {
    name: "recorded Suspended at this generation: no probe, no write, only the expiry timer",
    sandbox: {
      spec: { suspended: true },
      status: {
        phase: "Suspended",
        observedGeneration: 1,
        conditions: [cond("Suspended", "True", 5, "Suspended")],
      },
    },
    now: 100,
    want: { actions: [], requeueAfter: (TTL - 100) * 1000 + 1 },
  },
  {
    name: "recorded Suspended, spec edited since (new generation): asked again",
    sandbox: {
      generation: 2,
      spec: { suspended: true },
      status: {
        phase: "Suspended",
        observedGeneration: 1,
        conditions: [cond("Suspended", "True", 5, "Suspended")],
      },
    },
    now: 100,
    want: { probe: "suspend" },
  },
  {
    name: "idle suspend (annotation): the reason is IdleTimeout",
    sandbox: {
      spec: { suspended: true, idleTimeout: "15m" },
      annotations: { "sandboxing.dev/suspend-reason": "IdleTimeout" },
      status: { phase: "Running" },
    },
    observed: { suspended: { released: true } },
    now: 5,
    want: (d) => {
      if (d.probe) throw new Error("probe");
      expect(condition(d.status, ConditionType.Suspended)?.reason).toBe(
        ConditionReason.IdleTimeout,
      );
      expect(d.status?.reason).toBe(ConditionReason.IdleTimeout);
    },
  },
  {
    name: "recorded as a requested suspend, annotation now says idle: rewritten, not skipped",
    sandbox: {
      spec: { suspended: true },
      annotations: { "sandboxing.dev/suspend-reason": "IdleTimeout" },
      status: {
        phase: "Suspended",
        observedGeneration: 1,
        conditions: [cond("Suspended", "True", 5, "Suspended")],
      },
    },
    now: 10,
    want: { probe: "suspend" },
  },
  {
    name: "suspended: the lifetime keeps counting (Delete at expiry)",
    sandbox: {
      spec: { suspended: true },
      status: {
        phase: "Suspended",
        observedGeneration: 1,
        conditions: [cond("Suspended", "True", 5, "Suspended")],
      },
    },
    now: TTL,
    want: (d) => expect(!d.probe && d.actions.map((a) => a.type)).toEqual(["event", "delete"]),
  },
  {
    name: "suspended, expiry with Retain: removed, phase Expired",
    sandbox: {
      spec: { suspended: true, lifetime: { ttlSeconds: TTL, onExpire: "Retain" } },
      status: { phase: "Suspended", observedGeneration: 1 },
    },
    observed: { removed: true },
    now: TTL,
    want: (d) => expect(!d.probe && d.status?.phase).toBe("Expired"),
  },
  {
    name: "suspended, being deleted: the finalizer's cleanup runs",
    sandbox: {
      spec: { backend: "docker", suspended: true },
      finalizers: [SANDBOX_FINALIZER],
      deleting: true,
      status: { phase: "Suspended", observedGeneration: 1 },
    },
    now: 10,
    want: { probe: "remove" },
  },
  {
    name: "a finished sandbox stays finished when suspended",
    sandbox: { spec: { suspended: true }, status: { phase: "Succeeded", exitCode: 0 } },
    now: 10,
    want: { probe: "observe" },
  },
  {
    name: "resume: suspended cleared, the backend ensures again",
    sandbox: {
      spec: { suspended: false },
      status: {
        phase: "Suspended",
        observedGeneration: 1,
        conditions: [cond("Suspended", "True", 5, "Suspended")],
      },
    },
    now: 20,
    want: { probe: "ensure" },
  },
  {
    name: "resumed: Suspended=False Resumed, suspendedAt cleared, workspace kept",
    sandbox: {
      generation: 3,
      status: {
        phase: "Suspended",
        observedGeneration: 2,
        suspendedAt: CREATED,
        workspace: { name: "w" },
        conditions: [cond("Suspended", "True", 5, "Suspended")],
      },
    },
    observed: { ensured: running },
    now: 20,
    want: (d) => {
      if (d.probe) throw new Error("probe");
      expect(d.status?.phase).toBe("Running");
      expect(d.status?.suspendedAt).toBeUndefined();
      expect(d.status?.workspace).toEqual({ name: "w" });
      expect(condition(d.status, ConditionType.Suspended)).toMatchObject({
        status: "False",
        reason: ConditionReason.Resumed,
      });
    },
  },
  {
    name: "never suspended: no Suspended condition appears",
    sandbox: {},
    observed: { ensured: running },
    now: 1,
    want: (d) => expect(!d.probe && condition(d.status, ConditionType.Suspended)).toBeUndefined(),
  },
  {
    name: "workspace readiness from the backend becomes WorkspaceReady",
    sandbox: { spec: { workspace: {} } },
    observed: {
      ensured: {
        phase: "Pending",
        ready: false,
        reason: ConditionReason.WorkspacePending,
        message: "PVC s-workspace is Pending",
        workspace: { name: "s-workspace", retentionPolicy: "Delete" },
        workspaceReady: {
          ready: false,
          reason: ConditionReason.WorkspacePending,
          message: "PVC s-workspace is Pending",
        },
      },
    },
    now: 1,
    want: (d) => {
      if (d.probe) throw new Error("probe");
      expect(condition(d.status, ConditionType.WorkspaceReady)).toMatchObject({
        status: "False",
        reason: ConditionReason.WorkspacePending,
      });
      expect(d.status?.workspace?.name).toBe("s-workspace");
    },
  },
];

describe("decide", () => {
  it.each(cases)("$name", ({ sandbox, observed = {}, now, config: over, want }) => {
    const decision = decide(readSandbox(stored(sandbox)), observed, at(now), config(over));
    if (typeof want === "function") want(decision);
    else expect(decision).toEqual(want);
  });

  it("is pure: the same input, the same decision", () => {
    for (const c of cases) {
      const run = () =>
        decide(readSandbox(stored(c.sandbox)), c.observed ?? {}, at(c.now), config(c.config));
      expect(run()).toEqual(run());
    }
  });
});
