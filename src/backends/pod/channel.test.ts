// The pod backend's share of the policy channel: what the Pod and its
// NetworkPolicy say when the channel is on, and nothing of it when off.
import { describe, expect, it } from "vitest";
import type { Sandbox } from "../../api/sandbox.js";
import { type SandboxSpecInput, SandboxSpecSchema } from "../../api/sandbox-spec.js";
import { podLiveEgress, warmBlocker } from "../../claim/warm.js";
import {
  POLICY_AUDIENCE,
  POLICY_CA_ANNOTATION,
  POLICY_TOKEN_DIR,
} from "../../policy-server/contract.js";
import { desiredNetworkPolicy } from "./network-policy.js";
import { desiredPod } from "./pod.js";

function sandbox(spec: SandboxSpecInput): Sandbox {
  return {
    apiVersion: "sandboxing.dev/v1alpha1",
    kind: "Sandbox",
    metadata: { name: "a", namespace: "team", uid: "uid-1", generation: 1 },
    spec: SandboxSpecSchema.parse(spec),
  };
}
const channel = { host: "10.213.5.1", port: 15090, caPem: "-----BEGIN CERTIFICATE-----\nx\n" };

describe("the pod with the policy channel", () => {
  const pod = desiredPod(sandbox({ image: "x" }), { image: "op:1", channel });
  const init = pod.spec!.initContainers!;
  const sidecar = init.find((c) => c.name === "egress")!;
  const lockdown = init.find((c) => c.name === "egress-init")!;

  it("mounts the projected token into the sidecar alone", () => {
    const volume = pod.spec!.volumes!.find((v) => v.projected)!;
    expect(volume.projected!.sources![0]!.serviceAccountToken).toEqual({
      audience: POLICY_AUDIENCE,
      expirationSeconds: 600,
      path: "token",
    });
    const mounting = [...init, ...pod.spec!.containers].filter((c) =>
      c.volumeMounts?.some((m) => m.name === volume.name),
    );
    expect(mounting.map((c) => c.name)).toEqual(["egress"]);
    expect(sidecar.volumeMounts).toContainEqual(
      expect.objectContaining({ name: volume.name, mountPath: POLICY_TOKEN_DIR, readOnly: true }),
    );
    expect(pod.spec!.automountServiceAccountToken).toBe(false);
    expect(pod.spec!.shareProcessNamespace).toBeUndefined();
  });

  it("tells the sidecar and the lockdown where the endpoint is, and gives the CA", () => {
    expect(sidecar.args).toContain("--policy-url=https://10.213.5.1:15090");
    expect(lockdown.args).toContain("--controller=10.213.5.1:15090");
    expect(pod.metadata!.annotations![POLICY_CA_ANNOTATION]).toBe(channel.caPem);
    expect(sidecar.args!.some((a) => a.startsWith("--policy-server-name"))).toBe(false);
  });

  it("names the Service the certificate must carry when the endpoint is a Service's ClusterIP", () => {
    const viaService = desiredPod(sandbox({ image: "x" }), {
      image: "op:1",
      channel: { ...channel, serverName: "so-policy.ops.svc" },
    });
    const egress = viaService.spec!.initContainers!.find((c) => c.name === "egress")!;
    expect(egress.args).toContain("--policy-url=https://10.213.5.1:15090");
    expect(egress.args).toContain("--policy-server-name=so-policy.ops.svc");
  });

  it("is a different pod without the channel, with none of it", () => {
    const off = desiredPod(sandbox({ image: "x" }), { image: "op:1" });
    expect(JSON.stringify(off)).not.toContain("policy-url");
    expect(off.spec!.volumes!.some((v) => v.projected)).toBe(false);
    expect(off.metadata!.annotations![POLICY_CA_ANNOTATION]).toBeUndefined();
  });

  it("lets the Pod reach the endpoint's port through the NetworkPolicy", () => {
    const np = desiredNetworkPolicy(sandbox({ image: "x" }), channel);
    expect(np.spec!.egress).toContainEqual({
      to: [{ ipBlock: { cidr: "10.213.5.1/32" } }],
      ports: [{ protocol: "TCP", port: 15090 }],
    });
    const peer = { podSelector: { matchLabels: { app: "op" } } };
    const byPeer = desiredNetworkPolicy(sandbox({ image: "x" }), { ...channel, peer });
    expect(byPeer.spec!.egress).toContainEqual({
      to: [peer],
      ports: [{ protocol: "TCP", port: 15090 }],
    });
    expect(JSON.stringify(desiredNetworkPolicy(sandbox({ image: "x" })))).not.toContain("15090");
  });
});

describe("warm claims on the pod backend", () => {
  const template = SandboxSpecSchema.parse({ image: "x", backend: "pod" });
  const names = {
    templateRef: { name: "t" },
    egress: {
      defaultAction: "deny" as const,
      rules: [{ action: "allow" as const, target: "pypi.org" }],
    },
  };
  const address = {
    templateRef: { name: "t" },
    egress: {
      defaultAction: "deny" as const,
      rules: [{ action: "allow" as const, target: "10.0.0.0/8" }],
    },
  };
  it("are warm for name rules with the channel, cold without", () => {
    expect(warmBlocker(names, template, "pod", podLiveEgress(true))).toBeUndefined();
    expect(warmBlocker(names, template, "pod", podLiveEgress(false))).toContain(
      "no policy channel",
    );
  });
  it("are warm for address rules with the channel too (the sidecar judges them)", () => {
    expect(warmBlocker(address, template, "pod", podLiveEgress(true))).toBeUndefined();
    expect(warmBlocker(address, template, "pod", podLiveEgress(false))).toContain(
      "no policy channel",
    );
  });
});
