import { describe, expect, it } from "vitest";
import { IdleMark } from "../api/idle.js";
import {
  afterUnreachable,
  asleep,
  idleSuspendPatch,
  resumePatch,
  type WakeInput,
  WakeRefusedError,
  type WakeState,
  WakeTimeoutError,
  wake,
  wakeState,
} from "./wake.js";

const MARK = { [IdleMark.annotation]: IdleMark.value };
const ready = (status: "True" | "False") => [{ type: "Ready", status }];

function sbx(o: {
  suspended?: boolean;
  mark?: boolean;
  phase?: string;
  ready?: "True" | "False";
  deleting?: boolean;
}): WakeInput {
  return {
    metadata: {
      namespace: "ns",
      name: "a",
      uid: "u1",
      ...(o.mark ? { annotations: MARK } : {}),
      ...(o.deleting ? { deletionTimestamp: "2030-01-01T00:00:00Z" } : {}),
    },
    spec: o.suspended === undefined ? {} : { suspended: o.suspended },
    status: { ...(o.phase ? { phase: o.phase } : {}), conditions: ready(o.ready ?? "False") },
  };
}

const cases: [string, WakeInput, WakeState["kind"], string?][] = [
  ["running and ready", sbx({ phase: "Running", ready: "True" }), "serving"],
  [
    "running, suspended: false explicitly",
    sbx({ suspended: false, phase: "Running", ready: "True" }),
    "serving",
  ],
  ["running but not ready", sbx({ phase: "Running" }), "starting"],
  ["pending", sbx({ phase: "Pending" }), "starting"],
  [
    "resumed, the controller not there yet",
    sbx({ suspended: false, phase: "Suspended" }),
    "starting",
  ],
  ["suspended by the operator", sbx({ suspended: true, mark: true, phase: "Suspended" }), "resume"],
  [
    "suspended by the operator, status not caught up",
    sbx({ suspended: true, mark: true, phase: "Running", ready: "True" }),
    "resume",
  ],
  [
    "suspended by a person",
    sbx({ suspended: true, phase: "Suspended" }),
    "refuse",
    "SANDBOX_SUSPENDED",
  ],
  [
    "suspended by a person, stale mark removed",
    sbx({ suspended: true, phase: "Running", ready: "True" }),
    "refuse",
    "SANDBOX_SUSPENDED",
  ],
  ["finished", sbx({ phase: "Succeeded" }), "refuse", "SANDBOX_FINISHED"],
  [
    "expired while suspended",
    sbx({ suspended: true, mark: true, phase: "Expired" }),
    "refuse",
    "SANDBOX_FINISHED",
  ],
  [
    "being deleted",
    sbx({ suspended: true, mark: true, deleting: true }),
    "refuse",
    "SANDBOX_DELETING",
  ],
];

describe("wakeState", () => {
  it.each(cases)("%s", (_name, s, kind, code) => {
    const state = wakeState(s);
    expect(state.kind).toBe(kind);
    if (code) expect(state).toMatchObject({ code });
  });

  it("names what to do about a sandbox a person suspended", () => {
    const state = wakeState(sbx({ suspended: true }));
    expect(state.kind === "refuse" && state.message).toContain("kubectl sandbox resume a");
  });

  it("asleep: suspended in spec or in status", () => {
    expect(asleep(sbx({ suspended: true }))).toBe(true);
    expect(asleep(sbx({ suspended: false, phase: "Suspended" }))).toBe(true);
    expect(asleep(sbx({ phase: "Running", ready: "True" }))).toBe(false);
  });
});

describe("afterUnreachable", () => {
  it.each([
    ["idle-suspended", sbx({ suspended: true, mark: true, phase: "Suspended" }), "wake"],
    ["suspended by a person (wake refuses it)", sbx({ suspended: true }), "wake"],
    [
      "resumed by someone else, serving on new endpoints",
      sbx({ suspended: false, phase: "Running", ready: "True" }),
      "reconnect",
    ],
    [
      "serving all along (a reset connection)",
      sbx({ phase: "Running", ready: "True" }),
      "reconnect",
    ],
    ["resumed by someone else, not Ready yet", sbx({ suspended: false, phase: "Pending" }), "wait"],
    ["running, not Ready", sbx({ phase: "Running" }), "wait"],
    ["finished", sbx({ phase: "Failed" }), "fail"],
    ["being deleted", sbx({ phase: "Running", ready: "True", deleting: true }), "fail"],
  ] as const)("%s: %s", (_name, s, next) => {
    expect(afterUnreachable(s)).toBe(next);
  });
});

describe("patches", () => {
  it("resume: unsuspend, remove the mark, this UID only", () => {
    expect(resumePatch("u1")).toEqual({
      metadata: { uid: "u1", annotations: { [IdleMark.annotation]: null } },
      spec: { suspended: false },
    });
  });
  it("idle suspend: suspend, mark it IdleTimeout", () => {
    expect(idleSuspendPatch("u1")).toEqual({
      metadata: {
        uid: "u1",
        annotations: { [IdleMark.annotation]: "IdleTimeout" },
      },
      spec: { suspended: true },
    });
  });
});

/** A fake clock and a script of what each read returns. */
function script(states: WakeInput[], timeoutMs = 1000) {
  let t = 0;
  let i = 0;
  const patches: string[] = [];
  return {
    patches,
    run: () =>
      wake({
        read: () => states[Math.min(i++, states.length - 1)],
        resume: async (s) => {
          patches.push(s.metadata.uid!);
        },
        timeoutMs,
        pollMs: 100,
        now: () => t,
        sleep: async (ms) => {
          t += ms;
        },
      }),
    elapsed: () => t,
  };
}

describe("wake", () => {
  it("serving already: nothing patched", async () => {
    const s = script([sbx({ phase: "Running", ready: "True" })]);
    await expect(s.run()).resolves.toMatchObject({ resumed: false });
    expect(s.patches).toEqual([]);
  });

  it("idle-suspended: patched once (the cache lags), then waits until Ready", async () => {
    const s = script([
      sbx({ suspended: true, mark: true, phase: "Suspended" }),
      sbx({ suspended: true, mark: true, phase: "Suspended" }),
      sbx({ suspended: false, phase: "Suspended" }),
      sbx({ suspended: false, phase: "Pending" }),
      sbx({ suspended: false, phase: "Running", ready: "True" }),
    ]);
    await expect(s.run()).resolves.toMatchObject({ resumed: true });
    expect(s.patches).toEqual(["u1"]);
    expect(s.elapsed()).toBe(400);
  });

  it("times out with what it last saw", async () => {
    const s = script(
      [sbx({ suspended: true, mark: true, phase: "Suspended" }), sbx({ phase: "Pending" })],
      500,
    );
    const err = await s.run().catch((e) => e);
    expect(err).toBeInstanceOf(WakeTimeoutError);
    expect(err.message).toMatch(/did not become Ready within 500 ms.*phase Pending/);
    expect(s.elapsed()).toBe(500);
  });

  it("refuses a sandbox a person suspended, without patching it", async () => {
    const s = script([sbx({ suspended: true, phase: "Suspended" })]);
    const err = await s.run().catch((e) => e);
    expect(err).toBeInstanceOf(WakeRefusedError);
    expect(err.code).toBe("SANDBOX_SUSPENDED");
    expect(s.patches).toEqual([]);
  });

  it("a sandbox deleted while waking is refused", async () => {
    const s = script([sbx({ suspended: true, mark: true }), sbx({ deleting: true })]);
    await expect(s.run()).rejects.toMatchObject({ code: "SANDBOX_DELETING" });
  });
});
