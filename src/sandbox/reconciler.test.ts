// The shell around decide(): that it performs what was decided, in order, and
// nothing once its signal is aborted. Fakes only stand in for the backend and
// the writers; the decisions themselves are decide.test.ts's.
import { describe, expect, it } from "vitest";
import { ConditionReason } from "../api/conditions.js";
import type { SandboxStatus } from "../api/sandbox-status.js";
import type {
  BackendContext,
  BackendEvent,
  Observation,
  SandboxBackend,
} from "../backends/backend.js";
import { PermanentError } from "../controller/errors.js";
import type { StatusWriteResult } from "../controller/status-writer.js";
import { createLogger } from "../observability/logger.js";
import { SandboxReconciler } from "./reconciler.js";

const NOW = Date.parse("2030-01-01T00:00:10Z");
const sandbox = (status?: object) => ({
  apiVersion: "sandboxing.dev/v1alpha1",
  kind: "Sandbox",
  metadata: {
    name: "s",
    namespace: "ns",
    uid: "u",
    generation: 1,
    creationTimestamp: "2030-01-01T00:00:00Z",
  },
  spec: { image: "busybox", lifetime: { ttlSeconds: 60 } },
  status,
});

const running: Observation = {
  phase: "Running",
  ready: true,
  reason: ConditionReason.Running,
  message: "the workload is running",
};

function harness(opts: {
  ensure: (ctx: BackendContext) => Promise<Observation>;
  stored?: object;
  write?: StatusWriteResult;
}) {
  const log: string[] = [];
  const statuses: SandboxStatus[] = [];
  const diffedAgainst: unknown[] = [];
  const events: BackendEvent[] = [];
  const ready: number[] = [];
  const backend: SandboxBackend = {
    name: "pod",
    needsFinalizer: false,
    ensure: (_s, ctx) => {
      log.push("ensure");
      return opts.ensure(ctx);
    },
    observe: async () => undefined,
    remove: async () => true,
    suspend: async () => ({ released: true }),
  };
  const reconciler = new SandboxReconciler({
    getSandbox: () => opts.stored ?? sandbox(),
    backends: { pod: backend },
    defaultBackend: "pod",
    writeStatus: async (ref, status) => {
      log.push("writeStatus");
      diffedAgainst.push(ref.status);
      statuses.push(status);
      return opts.write ?? "written";
    },
    deleteSandbox: async () => void log.push("delete"),
    addFinalizer: async () => void log.push("addFinalizer"),
    removeFinalizer: async () => void log.push("removeFinalizer"),
    recordEvent: (_s, e) => void events.push(e),
    stallTimeoutSeconds: 30,
    now: () => new Date(NOW),
    log: createLogger({ level: "silent" }),
    onReady: (_b, seconds) => void ready.push(seconds),
  });
  return { reconciler, log, statuses, events, ready, diffedAgainst };
}

describe("SandboxReconciler", () => {
  it("ensures, writes the observed status, records the phase change and the time to Ready", async () => {
    const h = harness({ ensure: async () => running });
    const result = await h.reconciler.reconcile("ns/s");
    expect(h.log).toEqual(["ensure", "writeStatus"]);
    expect(h.statuses[0]?.phase).toBe("Running");
    expect(h.events.map((e) => e.reason)).toEqual(["Running"]);
    expect(h.ready).toEqual([10]);
    expect(result.requeueAfter).toBe(50_001);
  });

  it("hands the backend its signal, and writes nothing once it is aborted", async () => {
    const abort = new AbortController();
    let seen: AbortSignal | undefined;
    const h = harness({
      ensure: async (ctx) => {
        seen = ctx.signal;
        abort.abort(); // leadership lost while the backend worked
        return running;
      },
    });
    await expect(h.reconciler.reconcile("ns/s", abort.signal)).rejects.toThrow();
    expect(seen).toBe(abort.signal);
    expect(h.log).toEqual(["ensure"]);
    expect(h.events).toEqual([]);
  });

  it("turns a backend's PermanentError into a condition, and still looks again at expiry", async () => {
    const h = harness({
      ensure: async () => {
        throw new PermanentError(ConditionReason.Rejected, 'Pod "s" is invalid (HTTP 422)');
      },
    });
    const result = await h.reconciler.reconcile("ns/s");
    expect(h.statuses[0]?.conditions?.find((c) => c.type === "Invalid")).toMatchObject({
      status: "True",
      reason: "Rejected",
      message: 'Pod "s" is invalid (HTTP 422)',
    });
    expect(result.requeueAfter).toBe(50_001);
  });

  it("does nothing more while the cache has not caught up with its last write", async () => {
    const h = harness({ ensure: async () => running, write: "awaitingCache" });
    expect(await h.reconciler.reconcile("ns/s")).toEqual({});
    expect(h.events).toEqual([]);
    expect(h.ready).toEqual([]);
  });

  it("diffs against the status as stored, so what it cannot read is overwritten", async () => {
    const stored = sandbox({ phase: "Running", finishedAt: "2024-01-01t00:00:00x" });
    const h = harness({ ensure: async () => running, stored });
    await h.reconciler.reconcile("ns/s");
    expect(h.diffedAgainst[0]).toEqual({ phase: "Running", finishedAt: "2024-01-01t00:00:00x" });
    expect(h.statuses[0]?.finishedAt).toBeUndefined();
  });

  it("tells how long until expiry from spec and metadata, whatever the status says", () => {
    const h = harness({
      ensure: async () => running,
      stored: sandbox({ expiresAt: "2099-01-01T00:00:00Z", phase: "Expired" }),
    });
    expect(h.reconciler.untilExpiry("ns/s")).toBe(50_000);
  });
});
