import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { podCacheView } from "./cache.js";
import { EGRESS_SIDECAR_CONTAINER } from "./egress.js";
import { podChangeMatters } from "./pod-change.js";

const base = (): V1Pod => ({
  metadata: {
    name: "s",
    namespace: "ns",
    uid: "u1",
    resourceVersion: "10",
    labels: { a: "1" },
    annotations: { p: "x" },
    ownerReferences: [
      {
        apiVersion: "sandboxing.dev/v1alpha1",
        kind: "Sandbox",
        name: "s",
        uid: "s1",
        controller: true,
      },
    ],
  },
  spec: {
    initContainers: [
      { name: EGRESS_SIDECAR_CONTAINER, image: "egress:1", restartPolicy: "Always" },
    ],
    containers: [{ name: "sandbox", image: "img:1" }],
  },
  status: { phase: "Pending" },
});

const running = (p: V1Pod, opts: { ready?: boolean; sidecarRestarts?: number } = {}): V1Pod => ({
  ...p,
  status: {
    phase: "Running",
    podIP: "10.0.0.5",
    startTime: new Date("2026-01-01T00:00:00Z"),
    conditions: [{ type: "PodScheduled", status: "True" }],
    initContainerStatuses: [
      {
        name: EGRESS_SIDECAR_CONTAINER,
        image: "egress:1",
        imageID: "",
        ready: true,
        restartCount: opts.sidecarRestarts ?? 0,
        state: { running: {} },
      },
    ],
    containerStatuses: [
      {
        name: "sandbox",
        image: "img:1",
        imageID: "",
        ready: opts.ready ?? true,
        restartCount: 0,
        state: { running: { startedAt: new Date("2026-01-01T00:00:01Z") } },
      },
    ],
  },
});

const edit = (p: V1Pod, f: (p: V1Pod) => void): V1Pod => {
  const copy = structuredClone(p);
  f(copy);
  return copy;
};

describe("podChangeMatters", () => {
  const rows: { name: string; old: V1Pod; pod: V1Pod; matters: boolean }[] = [
    {
      name: "only the resourceVersion moved",
      old: base(),
      pod: edit(base(), (p) => {
        p.metadata!.resourceVersion = "11";
      }),
      matters: false,
    },
    {
      name: "bound to a node (PodScheduled=True, nodeName): still Pending, same message",
      old: base(),
      pod: edit(base(), (p) => {
        p.metadata!.resourceVersion = "11";
        p.spec!.nodeName = "node-1";
        p.status!.conditions = [{ type: "PodScheduled", status: "True" }];
      }),
      matters: false,
    },
    {
      name: "a kubelet condition the backend does not read (after the cache view)",
      old: podCacheView(running(base())),
      pod: podCacheView(
        edit(running(base()), (p) => {
          p.metadata!.resourceVersion = "12";
          p.status!.conditions!.push({ type: "Ready", status: "True" });
        }),
      ),
      matters: false,
    },
    {
      name: "unschedulable",
      old: base(),
      pod: edit(base(), (p) => {
        p.status!.conditions = [
          { type: "PodScheduled", status: "False", reason: "Unschedulable", message: "no" },
        ];
      }),
      matters: true,
    },
    { name: "Pending -> Running", old: base(), pod: running(base()), matters: true },
    {
      name: "workload readiness",
      old: running(base(), { ready: false }),
      pod: running(base()),
      matters: true,
    },
    {
      name: "the pod IP",
      old: running(base()),
      pod: edit(running(base()), (p) => {
        p.status!.podIP = "10.0.0.6";
      }),
      matters: true,
    },
    {
      name: "the sidecar restarted (an Event), ready again by the next look",
      old: running(base()),
      pod: running(base(), { sidecarRestarts: 1 }),
      matters: true,
    },
    {
      name: "marked for deletion",
      old: base(),
      pod: edit(base(), (p) => {
        p.metadata!.deletionTimestamp = new Date();
      }),
      matters: true,
    },
    {
      name: "a label removed",
      old: base(),
      pod: edit(base(), (p) => {
        p.metadata!.labels = {};
      }),
      matters: true,
    },
    {
      name: "the policy-applied annotation",
      old: base(),
      pod: edit(base(), (p) => {
        p.metadata!.annotations!.applied = "h2";
      }),
      matters: true,
    },
    {
      name: "the owner reference removed",
      old: base(),
      pod: edit(base(), (p) => {
        p.metadata!.ownerReferences = [];
      }),
      matters: true,
    },
    {
      name: "a container image edited",
      old: base(),
      pod: edit(base(), (p) => {
        p.spec!.containers[0]!.image = "img:2";
      }),
      matters: true,
    },
    {
      name: "the workload finished",
      old: running(base()),
      pod: edit(running(base()), (p) => {
        p.status!.phase = "Succeeded";
        p.status!.containerStatuses![0]!.state = { terminated: { exitCode: 0 } };
      }),
      matters: true,
    },
  ];
  it.each(rows)("$name: $matters", ({ old, pod, matters }) => {
    expect(podChangeMatters(pod, old)).toBe(matters);
  });
});
