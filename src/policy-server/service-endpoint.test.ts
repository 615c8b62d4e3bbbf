import type * as k8s from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { endpointOfService, parseServiceRef } from "./service-endpoint.js";

const ref = { namespace: "ops", name: "so-policy" };
const svc = (spec: k8s.V1ServiceSpec): k8s.V1Service => ({ spec });

describe("endpointOfService", () => {
  it.each<[string, k8s.V1ServiceSpec, ReturnType<typeof endpointOfService>]>([
    [
      "the port named policy, checked against the Service's DNS name",
      {
        clusterIP: "10.96.4.7",
        ports: [
          { name: "metrics", port: 9090 },
          { name: "policy", port: 15090 },
        ],
      },
      { host: "10.96.4.7", port: 15090, serverName: "so-policy.ops.svc" },
    ],
    [
      "an only port, whatever its name",
      { clusterIP: "fd00::7", ports: [{ port: 443 }] },
      { host: "fd00::7", port: 443, serverName: "so-policy.ops.svc" },
    ],
    [
      "headless: no address for the Pods' lockdown to name",
      { clusterIP: "None", ports: [{ name: "policy", port: 15090 }] },
      {
        error:
          "Service ops/so-policy has no ClusterIP (a headless Service cannot front the endpoint)",
      },
    ],
    [
      "no address yet",
      { ports: [{ name: "policy", port: 15090 }] },
      {
        error:
          "Service ops/so-policy has no ClusterIP (a headless Service cannot front the endpoint)",
      },
    ],
    [
      "several ports, none named policy",
      { clusterIP: "10.96.4.7", ports: [{ port: 1 }, { port: 2 }] },
      { error: 'Service ops/so-policy has no port named "policy"' },
    ],
  ])("%s", (_, spec, want) => {
    expect(endpointOfService(ref, svc(spec))).toEqual(want);
  });
});

describe("parseServiceRef", () => {
  it.each([
    ["ops/so-policy", ref],
    ["so-policy", undefined],
    ["ops/", undefined],
    ["Ops/x", undefined],
    ["ops/x/y", undefined],
  ])("%s", (value, want) => {
    expect(parseServiceRef(value)).toEqual(want);
  });
});
