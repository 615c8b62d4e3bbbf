import type { V1ContainerStatus, V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { egressSidecarRestartEvent, observePod } from "./observe.js";

const pod = (status: V1Pod["status"], nodeName?: string): V1Pod => ({
  metadata: { name: "agent" },
  spec: { containers: [{ name: "sandbox", image: "x" }], nodeName },
  status,
});

describe("observePod", () => {
  it("is Pending while unscheduled", () => {
    expect(observePod(pod({ phase: "Pending" }))).toMatchObject({
      phase: "Pending",
      ready: false,
      reason: "Creating",
    });
  });

  it("reports Unschedulable with the scheduler's message", () => {
    const o = observePod(
      pod({
        phase: "Pending",
        conditions: [
          {
            type: "PodScheduled",
            status: "False",
            reason: "Unschedulable",
            message: "0/1 nodes are available",
          },
        ],
      }),
    );
    expect(o).toMatchObject({
      reason: "Unschedulable",
      stalled: true,
      message: "0/1 nodes are available",
    });
  });

  it.each(["ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff", "CreateContainerConfigError"])(
    "turns waiting reason %s into a stall",
    (reason) => {
      const o = observePod(
        pod({
          phase: "Pending",
          containerStatuses: [
            {
              name: "sandbox",
              image: "x",
              imageID: "",
              ready: false,
              restartCount: 0,
              state: { waiting: { reason, message: "the kubelet's words" } },
            },
          ],
        }),
      );
      expect(o).toMatchObject({ phase: "Pending", ready: false, reason, stalled: true });
      expect(o.message).toBe("container sandbox: the kubelet's words");
    },
  );

  it("is Running and ready when the workload container is ready", () => {
    const o = observePod(
      pod({
        phase: "Running",
        podIP: "10.244.0.7",
        containerStatuses: [
          {
            name: "sandbox",
            image: "x",
            imageID: "",
            ready: true,
            restartCount: 0,
            state: { running: { startedAt: new Date("2030-01-01T00:00:00Z") } },
          },
        ],
      }),
    );
    expect(o).toMatchObject({
      phase: "Running",
      ready: true,
      reason: "Running",
      ip: "10.244.0.7",
      startedAt: "2030-01-01T00:00:00Z",
    });
  });

  it.each([
    ["Succeeded", 0, "Completed", "Succeeded"],
    ["Failed", 3, "Error", "Failed"],
    ["Failed", 137, "OOMKilled", "OOMKilled"],
  ] as const)("maps %s with exit code %d (%s)", (phase, exitCode, termReason, reason) => {
    const o = observePod(
      pod({
        phase,
        containerStatuses: [
          {
            name: "sandbox",
            image: "x",
            imageID: "",
            ready: false,
            restartCount: 0,
            state: {
              terminated: {
                exitCode,
                reason: termReason,
                finishedAt: new Date("2030-01-01T00:01:00Z"),
              },
            },
          },
        ],
      }),
    );
    expect(o).toMatchObject({ phase, exitCode, reason, finishedAt: "2030-01-01T00:01:00Z" });
    expect(o.message).toContain(`exited with code ${exitCode}`);
  });
});

describe("the egress sidecar of a running pod", () => {
  const at = new Date("2030-01-01T00:00:00Z");
  const withSidecar = (sidecar: Partial<V1ContainerStatus>): V1Pod => ({
    metadata: { name: "agent", uid: "p1" },
    spec: {
      initContainers: [{ name: "egress", image: "op", restartPolicy: "Always" }],
      containers: [{ name: "sandbox", image: "x" }],
    },
    status: {
      phase: "Running",
      initContainerStatuses: [
        { name: "egress", image: "op", imageID: "", ready: false, restartCount: 0, ...sidecar },
      ],
      containerStatuses: [
        {
          name: "sandbox",
          image: "x",
          imageID: "",
          ready: true,
          restartCount: 0,
          state: { running: { startedAt: at } },
        },
      ],
    },
  });
  const crashed = { terminated: { exitCode: 137, reason: "OOMKilled" } };

  it.each([
    [
      "ready: egress enforced",
      { ready: true, state: { running: { startedAt: at } } },
      { ready: true, reason: "EgressEnforced" },
      "enforced",
    ],
    [
      "crash-looping: closed, with the restart count and the last exit",
      {
        restartCount: 3,
        state: { waiting: { reason: "CrashLoopBackOff" } },
        lastState: crashed,
      },
      { ready: false, reason: "EgressPending" },
      "is restarting (CrashLoopBackOff, 3 restarts; last exit code 137 (OOMKilled)); egress stays closed",
    ],
    [
      "just exited",
      { restartCount: 1, state: crashed },
      { ready: false, reason: "EgressPending" },
      "exited with code 137 (OOMKilled); the kubelet restarts it",
    ],
    [
      "running again but not ready yet",
      { restartCount: 1, state: { running: { startedAt: at } }, lastState: crashed },
      { ready: false, reason: "EgressPending" },
      "is starting again (1 restart; last exit code 137 (OOMKilled))",
    ],
  ] as const)("%s", (_, sidecar, egress, message) => {
    const o = observePod(withSidecar(sidecar as Partial<V1ContainerStatus>));
    // The workload keeps running; Ready follows EgressReady (in the status).
    expect(o).toMatchObject({ phase: "Running", egressReady: egress });
    expect(o.stalled).toBeUndefined();
    expect(o.egressReady?.message).toContain(message);
  });

  it("is an Event when the restart count rises, not on first sight", () => {
    const p = withSidecar({ restartCount: 2, lastState: crashed });
    expect(egressSidecarRestartEvent(p, undefined)).toBeUndefined();
    expect(egressSidecarRestartEvent(p, 2)).toBeUndefined();
    expect(egressSidecarRestartEvent(p, 1)).toMatchObject({
      type: "Warning",
      reason: "EgressSidecarRestarted",
      message: expect.stringContaining("2 restarts; last exit code 137"),
    });
  });

  it("still stalls a pod that never ran because its sidecar crash-loops", () => {
    const p = withSidecar({
      state: { waiting: { reason: "CrashLoopBackOff", message: "back-off" } },
    });
    p.status!.phase = "Pending";
    expect(observePod(p)).toMatchObject({
      phase: "Pending",
      stalled: true,
      reason: "CrashLoopBackOff",
    });
  });
});
