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
}

function stored({ spec = {}, status, finalizers, deleting }: StoredInput = {}) {
  return {
    apiVersion: "sandboxing.dev/v1alpha1",
    kind: "Sandbox",
    metadata: {
      name: "s",
      namespace: "ns",
      uid: "uid-1",
      generation: 1,
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
