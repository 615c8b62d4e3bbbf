import type { ContainerInspectInfo } from "dockerode";
import { describe, expect, it } from "vitest";
import type { Sandbox } from "../../api/sandbox.js";
import { SandboxSpecSchema } from "../../api/sandbox-spec.js";
import { observeContainers } from "./observe.js";

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
});
