import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { observePod } from "./observe.js";

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
