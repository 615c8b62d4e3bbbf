import type { V1ContainerStatus, V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { Sandbox } from "../../api/sandbox.js";
import { SandboxSpecSchema } from "../../api/sandbox-spec.js";
import { podCacheView } from "./cache.js";
import { EGRESS_SIDECAR_CONTAINER } from "./egress.js";
import { observePod } from "./observe.js";
import { desiredPod, WORKLOAD_CONTAINER } from "./pod.js";

const sandbox: Sandbox = {
  apiVersion: "sandboxing.dev/v1alpha1",
  kind: "Sandbox",
  metadata: { name: "agent", namespace: "team", uid: "uid-1", generation: 1 },
  spec: SandboxSpecSchema.parse({
    image: "python:3.12",
    command: ["python", "-m", "http.server"],
    env: [{ name: "A", value: "b" }],
    network: { egress: { rules: [{ action: "allow", target: "pypi.org" }] } },
  }),
};

const running = (name: string, ready: boolean): V1ContainerStatus => ({
  name,
  ready,
  restartCount: 0,
  image: "docker.io/library/x:latest",
  imageID: "docker.io/library/x@sha256:0123",
  containerID: "containerd://abc",
  started: true,
  state: { running: { startedAt: new Date("2026-11-23T00:00:00Z") } },
  lastState: {},
});

// Pods in the states the backend tells apart, as the apiserver returns them.
const states: Record<string, V1Pod["status"]> = {
  unscheduled: {
    phase: "Pending",
    conditions: [
      { type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/1 nodes" },
    ],
  },
  pulling: {
    phase: "Pending",
    conditions: [{ type: "PodScheduled", status: "True" }],
    containerStatuses: [
      {
        ...running(WORKLOAD_CONTAINER, false),
        state: { waiting: { reason: "ImagePullBackOff", message: "not found" } },
      },
    ],
  },
  running: {
    phase: "Running",
    podIP: "10.0.0.7",
    startTime: new Date("2026-11-23T00:00:00Z"),
    conditions: [
      { type: "PodScheduled", status: "True" },
      { type: "Ready", status: "True" },
      { type: "Initialized", status: "True" },
    ],
    initContainerStatuses: [running(EGRESS_SIDECAR_CONTAINER, true)],
    containerStatuses: [running(WORKLOAD_CONTAINER, true)],
  },
  "sidecar-restarting": {
    phase: "Running",
    podIP: "10.0.0.7",
    conditions: [{ type: "PodScheduled", status: "True" }],
    initContainerStatuses: [
      {
        ...running(EGRESS_SIDECAR_CONTAINER, false),
        restartCount: 2,
        state: { waiting: { reason: "CrashLoopBackOff", message: "back-off 20s" } },
        lastState: {
          terminated: {
            exitCode: 137,
            reason: "OOMKilled",
            startedAt: new Date("2026-11-23T00:00:00Z"),
            finishedAt: new Date("2026-11-23T00:01:00Z"),
            containerID: "containerd://abc",
          },
        },
      },
    ],
    containerStatuses: [running(WORKLOAD_CONTAINER, true)],
  },
  failed: {
    phase: "Failed",
    message: "evicted",
    containerStatuses: [
      {
        ...running(WORKLOAD_CONTAINER, false),
        state: { terminated: { exitCode: 3, reason: "Error", finishedAt: new Date() } },
      },
    ],
  },
};

describe("podCacheView", () => {
  const spec = desiredPod(sandbox, { image: "sandbox-operator:test" });

  it.each(Object.keys(states))("observes a %s pod exactly as the full pod", (state) => {
    const full: V1Pod = {
      ...spec,
      spec: { ...spec.spec!, nodeName: state === "unscheduled" ? undefined : "node-1" },
      status: states[state],
    };
    const view = podCacheView(structuredClone(full));
    expect(observePod(view)).toEqual(observePod(full));
    expect(view.metadata).toEqual(full.metadata);
    const images = (p: V1Pod) =>
      [...(p.spec?.initContainers ?? []), ...p.spec!.containers].map((c) => c.image);
    expect(images(view)).toEqual(images(full));
  });

  it("keeps a fraction of the pod", () => {
    const full: V1Pod = { ...spec, status: states.running };
    const view = podCacheView(structuredClone(full));
    // The metadata (with the egress policy annotation) is most of what remains.
    const { metadata: _m, ...fullRest } = full;
    const { metadata: _v, ...viewRest } = view;
    expect(JSON.stringify(viewRest).length).toBeLessThan(JSON.stringify(fullRest).length / 3);
  });
});
