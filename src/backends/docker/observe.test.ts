import type { ContainerInspectInfo } from "dockerode";
import { describe, expect, it } from "vitest";
import type { Sandbox } from "../../api/sandbox.js";
import { SandboxSpecSchema } from "../../api/sandbox-spec.js";
import { inSidecarNamespace, isBeingRemoved, observeContainers } from "./observe.js";

const sandbox: Sandbox = {
  apiVersion: "sandboxing.dev/v1alpha1",
  kind: "Sandbox",
  metadata: { name: "a", namespace: "n", uid: "u" },
  spec: SandboxSpecSchema.parse({ image: "x", ports: [{ name: "http", port: 8080 }] }),
};
const NEVER = "0001-01-01T00:00:00Z";

function container(
  state: Partial<ContainerInspectInfo["State"]>,
  extra = {},
): ContainerInspectInfo {
  return {
    Id: "c1",
    State: {
      Running: false,
      StartedAt: NEVER,
      FinishedAt: NEVER,
      ExitCode: 0,
      OOMKilled: false,
      ...state,
    },
    NetworkSettings: {
      Networks: { net: { IPAddress: "172.30.0.2" } },
      Ports: { "8080/tcp": [{ HostIp: "127.0.0.1", HostPort: "49153" }] },
    },
    ...extra,
  } as unknown as ContainerInspectInfo;
}
const sidecar = container({ Running: true, StartedAt: "2026-01-01T00:00:00Z" });

describe("observeContainers", () => {
  it("is Running and Ready with egress enforced, with the endpoint as published", () => {
    const o = observeContainers(sandbox, {
      sidecar,
      workload: container({ Running: true, StartedAt: "2026-01-01T00:00:01.5Z" }),
      sidecarReady: true,
    });
    expect(o).toMatchObject({
      phase: "Running",
      ready: true,
      ip: "172.30.0.2",
      startedAt: "2026-01-01T00:00:01Z",
    });
    expect(o.egressReady?.ready).toBe(true);
    expect(o.endpoints).toEqual([
      { name: "http", host: "127.0.0.1", port: 49153, url: "http://127.0.0.1:49153" },
    ]);
  });

  it("waits for the sidecar before there is a workload", () => {
    const o = observeContainers(sandbox, { sidecar, sidecarReady: false });
    expect(o).toMatchObject({ phase: "Pending", ready: false });
    expect(o.egressReady).toMatchObject({ ready: false, reason: "EgressPending" });
  });

  it.each([
    [{ ExitCode: 0 }, "Succeeded", "Succeeded"],
    [{ ExitCode: 3 }, "Failed", "Failed"],
    [{ ExitCode: 137, OOMKilled: true }, "Failed", "OOMKilled"],
  ] as const)("finished %j: %s (%s)", (state, phase, reason) => {
    const o = observeContainers(sandbox, {
      sidecar,
      workload: container({
        StartedAt: "2026-01-01T00:00:01Z",
        FinishedAt: "2026-01-01T00:01:00Z",
        ...state,
      }),
      sidecarReady: true,
    });
    expect(o).toMatchObject({
      phase,
      reason,
      exitCode: state.ExitCode,
      finishedAt: "2026-01-01T00:01:00Z",
    });
  });

  it("is not Ready while the image's health check is not healthy", () => {
    const o = observeContainers(sandbox, {
      sidecar,
      workload: container({
        Running: true,
        StartedAt: "2026-01-01T00:00:01Z",
        Health: { Status: "starting" },
      } as never),
      sidecarReady: true,
    });
    expect(o).toMatchObject({ phase: "Running", ready: false });
  });

  it("reports a dead sidecar: egress stays closed, the sandbox is not Ready", () => {
    const o = observeContainers(sandbox, {
      sidecar: container({ Running: false, StartedAt: "2026-01-01T00:00:00Z", ExitCode: 137 }),
      workload: container({ Running: true, StartedAt: "2026-01-01T00:00:01Z" }),
      sidecarReady: false,
    });
    expect(o.egressReady).toMatchObject({
      ready: false,
      message: expect.stringContaining("egress stays closed"),
    });
  });

  it("says when a dead sidecar's restart is held back by the crash-loop backoff", () => {
    const o = observeContainers(sandbox, {
      sidecar: container({ Running: false, StartedAt: "2026-01-01T00:00:00Z", ExitCode: 1 }),
      workload: container({ Running: true, StartedAt: "2026-01-01T00:00:01Z" }),
      sidecarReady: false,
      sidecarRestartInMs: 3500,
    });
    expect(o).toMatchObject({ phase: "Running", egressReady: { ready: false } });
    expect(o.egressReady?.message).toContain("restarting it in 4s");
  });

  it("never reports egress for a workload left in a replaced sidecar's namespace", () => {
    // The sidecar (re)started after the workload: the workload is in the old namespace.
    const o = observeContainers(sandbox, {
      sidecar: container({ Running: true, StartedAt: "2026-01-01T00:05:00Z" }),
      workload: container({ Running: true, StartedAt: "2026-01-01T00:00:01Z" }),
      sidecarReady: true,
    });
    expect(o).toMatchObject({
      phase: "Running",
      egressReady: { ready: false, reason: "EgressPending" },
    });
    expect(o.egressReady?.message).toContain("not in the sidecar's current network namespace");
  });

  it("is not Ready until the sidecar has this generation's policy in force, and says why", () => {
    const workload = container({ Running: true, StartedAt: "2026-01-01T00:00:01Z" });
    const waiting = observeContainers(sandbox, {
      sidecar,
      workload,
      sidecarReady: true,
      policy: { applied: false, message: "waiting for the egress sidecar to apply the policy" },
    });
    // Running, but egress pending: the reconciler's status turns that into Ready=False.
    expect(waiting).toMatchObject({
      phase: "Running",
      egressReady: {
        ready: false,
        reason: "EgressPending",
        message: "waiting for the egress sidecar to apply the policy",
      },
    });
    const applied = observeContainers(sandbox, {
      sidecar,
      workload,
      sidecarReady: true,
      policy: { applied: true, message: "acknowledged" },
    });
    expect(applied.egressReady).toEqual({
      ready: true,
      reason: "EgressEnforced",
      message: "acknowledged",
    });
  });

  it("a sidecar not ready yet is reported as such, whatever the acknowledgement", () => {
    const o = observeContainers(sandbox, {
      sidecar,
      sidecarReady: false,
      policy: { applied: true, message: "acknowledged" },
    });
    expect(o.egressReady).toMatchObject({ ready: false, reason: "EgressPending" });
    expect(o.egressReady?.message).toContain("installing the lockdown");
  });

  it.each(["removing", "dead"])(
    "a workload being removed by hand (%s) is not a finished sandbox: it is recreated",
    (status) => {
      const o = observeContainers(sandbox, {
        sidecar,
        workload: container({
          Status: status,
          StartedAt: "2026-01-01T00:00:01Z",
          FinishedAt: "2026-01-01T00:01:00Z",
          ExitCode: 137,
        }),
        sidecarReady: true,
      });
      expect(o).toMatchObject({ phase: "Pending", ready: false, reason: "Creating" });
      expect(o.exitCode).toBeUndefined();
    },
  );
});

describe("inSidecarNamespace", () => {
  const at = (StartedAt: string, Running = true) => container({ Running, StartedAt });
  it.each([
    [
      "the workload started after the sidecar",
      at("2026-01-01T00:00:00.1Z"),
      at("2026-01-01T00:00:00.9Z"),
      true,
    ],
    [
      "the sidecar restarted after the workload",
      at("2026-01-01T00:01:00Z"),
      at("2026-01-01T00:00:01Z"),
      false,
    ],
    [
      "nanosecond timestamps",
      at("2026-01-01T00:00:00.100000001Z"),
      at("2026-01-01T00:00:00.300000001Z"),
      true,
    ],
    [
      "the sidecar is not running",
      at("2026-01-01T00:00:00Z", false),
      at("2026-01-01T00:00:01Z"),
      false,
    ],
    ["the sidecar is gone", undefined, at("2026-01-01T00:00:01Z"), false],
    [
      "the workload is not running",
      at("2026-01-01T00:00:00Z"),
      at("2026-01-01T00:00:01Z", false),
      false,
    ],
  ])("%s: %s", (_, s, w, expected) => {
    expect(inSidecarNamespace(s, w)).toBe(expected);
  });
});

describe("isBeingRemoved", () => {
  it.each([
    [{ Status: "removing" }, true],
    [{ Status: "dead" }, true],
    [{ Status: "exited", Dead: true }, true],
    [{ Status: "exited" }, false],
    [{ Status: "running", Running: true }, false],
  ])("%j: %s", (state, expected) => {
    expect(isBeingRemoved(container(state as never))).toBe(expected);
  });
});
