import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Labels } from "../../api/labels.js";
import type { Sandbox } from "../../api/sandbox.js";
import {
  type EgressPolicy,
  type SandboxSpecInput,
  SandboxSpecSchema,
} from "../../api/sandbox-spec.js";
import { deriveAgentToken } from "../agent.js";
import { specHash } from "../spec-hash.js";
import { desiredAgentSecret } from "./agent.js";
import { desiredNetworkPolicy, PRIVATE_IPV4 } from "./network-policy.js";
import { desiredPod } from "./pod.js";
import { desiredService, serviceEndpoints } from "./service.js";

function sandbox(spec: SandboxSpecInput, name = "agent"): Sandbox {
  return {
    apiVersion: "sandboxing.dev/v1alpha1",
    kind: "Sandbox",
    metadata: { name, namespace: "team", uid: "uid-1", generation: 1 },
    spec: SandboxSpecSchema.parse(spec),
  };
}

const EGRESS = { image: "sandbox-operator:test" };

describe("desiredPod", () => {
  const pod = desiredPod(
    sandbox({ image: "python:3.12", resources: { cpu: "500m", memory: "256Mi" } }),
    EGRESS,
  );
  const workload = pod.spec!.containers[0]!;

  it("is hardened by default", () => {
    expect(pod.spec!.automountServiceAccountToken).toBe(false);
    expect(pod.spec!.enableServiceLinks).toBe(false);
    expect(pod.spec!.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 1000,
      runAsGroup: 1000,
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(workload.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ["ALL"] },
      runAsNonRoot: true,
    });
  });

  it("sets requests equal to limits", () => {
    expect(workload.resources).toEqual({
      requests: { cpu: "500m", memory: "256Mi" },
      limits: { cpu: "500m", memory: "256Mi" },
    });
  });

  it("names, labels and owns the pod deterministically", () => {
    expect(pod.metadata!.name).toBe("agent");
    expect(pod.metadata!.labels![Labels.sandboxUid]).toBe("uid-1");
    expect(pod.metadata!.ownerReferences).toEqual([
      expect.objectContaining({
        kind: "Sandbox",
        uid: "uid-1",
        controller: true,
        blockOwnerDeletion: true,
      }),
    ]);
  });

  it("runs as root only when asked", () => {
    const root = desiredPod(sandbox({ image: "x", security: { runAsUser: 0 } }), EGRESS);
    expect(root.spec!.securityContext!.runAsNonRoot).toBe(false);
    expect(root.spec!.containers[0]!.securityContext!.capabilities).toEqual({ drop: ["ALL"] });
  });

  it("passes secret references through", () => {
    const p = desiredPod(
      sandbox({
        image: "x",
        env: [{ name: "T", valueFrom: { secretKeyRef: { name: "s", key: "k" } } }],
      }),
      EGRESS,
    );
    expect(p.spec!.containers[0]!.env).toContainEqual({
      name: "T",
      valueFrom: { secretKeyRef: { name: "s", key: "k", optional: undefined } },
    });
  });

  it("changes its hash with the spec, not with lifetime or ports", () => {
    const a = desiredPod(sandbox({ image: "x" }), EGRESS);
    const b = desiredPod(
      sandbox({ image: "x", lifetime: { ttlSeconds: 99 }, ports: [{ name: "http", port: 80 }] }),
      EGRESS,
    );
    const c = desiredPod(sandbox({ image: "y" }), EGRESS);
    expect(a.metadata!.annotations).toEqual(b.metadata!.annotations);
    expect(a.metadata!.annotations).not.toEqual(c.metadata!.annotations);
  });

  it("hashes independently of key order", () => {
    expect(specHash({ a: 1, b: { c: 2, d: 3 } })).toBe(specHash({ b: { d: 3, c: 2 }, a: 1 }));
  });
});

describe("egress in the pod", () => {
  const policy = { rules: [{ action: "allow" as const, target: "pypi.org" }] };
  const pod = desiredPod(sandbox({ image: "x", network: { egress: policy } }), EGRESS);
  const [lockdown, sidecar] = pod.spec!.initContainers!;

  it("installs the firewall first, with NET_ADMIN and nothing else of note", () => {
    expect(lockdown!.name).toBe("egress-init");
    expect(lockdown!.args![0]).toBe("egress-init");
    expect(lockdown!.securityContext!.capabilities).toEqual({
      drop: ["ALL"],
      add: ["NET_ADMIN", "NET_RAW"],
    });
    expect(lockdown!.securityContext!.allowPrivilegeEscalation).toBe(false);
  });

  it("runs the sidecar as a native sidecar that gates the workload", () => {
    expect(sidecar!.name).toBe("egress");
    expect(sidecar!.restartPolicy).toBe("Always");
    expect(sidecar!.startupProbe?.httpGet?.path).toBe("/readyz");
    expect(sidecar!.securityContext).toMatchObject({
      runAsUser: 1337,
      capabilities: { drop: ["ALL"] },
    });
  });

  it("points the workload at the explicit proxy", () => {
    expect(pod.spec!.containers[0]!.env).toContainEqual({
      name: "HTTPS_PROXY",
      value: "http://127.0.0.1:15001",
    });
  });

  it("carries the policy in an annotation the sidecar reads through the downward API", () => {
    expect(JSON.parse(pod.metadata!.annotations!["sandboxing.dev/egress-policy"]!)).toEqual({
      defaultAction: "deny",
      rules: policy.rules,
    });
    expect(pod.spec!.volumes).toContainEqual(expect.objectContaining({ name: "egress-policy" }));
  });

  it("recreates the pod for no egress change: the firewall holds no policy, the sidecar follows it", () => {
    const hash = (egress: EgressPolicy) =>
      desiredPod(sandbox({ image: "x", network: { egress } }), EGRESS).metadata!.annotations![
        "sandboxing.dev/spec-hash"
      ];
    const base = hash({ defaultAction: "deny", rules: [] });
    expect(
      hash({ defaultAction: "deny", rules: [{ action: "allow", target: "example.org" }] }),
    ).toBe(base);
    expect(
      hash({ defaultAction: "deny", rules: [{ action: "allow", target: "10.0.0.0/8" }] }),
    ).toBe(base);
    expect(hash({ defaultAction: "allow", rules: [] })).toBe(base);
  });
});

describe("desiredNetworkPolicy", () => {
  it("allows only DNS when nothing can be allowed", () => {
    const np = desiredNetworkPolicy(sandbox({ image: "x" }));
    expect(np.spec!.policyTypes).toEqual(["Ingress", "Egress"]);
    // Nothing may connect in: the agent listens on the Pod's loopback, reached
    // through pods/portforward, which enters the Pod's network namespace.
    expect(np.spec!.ingress).toEqual([]);
    expect(np.spec!.egress).toHaveLength(1);
    expect(np.spec!.egress![0]!.ports!.map((p) => p.port)).toEqual([53, 53]);
  });

  it("lets name rules reach public addresses only", () => {
    const np = desiredNetworkPolicy(
      sandbox({
        image: "x",
        network: { egress: { rules: [{ action: "allow", target: "pypi.org" }] } },
      }),
    );
    const publicRule = np.spec!.egress!.at(-1)!;
    expect(publicRule.to![0]!.ipBlock).toEqual({ cidr: "0.0.0.0/0", except: PRIVATE_IPV4 });
    expect(PRIVATE_IPV4).toContain("169.254.0.0/16");
  });

  it("passes allowed CIDRs through with their ports, private or not", () => {
    const np = desiredNetworkPolicy(
      sandbox({
        image: "x",
        network: {
          egress: { rules: [{ action: "allow", target: "10.20.0.0/16", ports: [5432] }] },
        },
      }),
    );
    expect(np.spec!.egress).toContainEqual({
      to: [{ ipBlock: { cidr: "10.20.0.0/16" } }],
      ports: [{ protocol: "TCP", port: 5432 }],
    });
    expect(np.spec!.egress).toHaveLength(2); // DNS + the CIDR; no catch-all
  });

  it("opens ingress to declared ports only", () => {
    const np = desiredNetworkPolicy(sandbox({ image: "x", ports: [{ name: "http", port: 8000 }] }));
    expect(np.spec!.ingress).toEqual([{ ports: [{ protocol: "TCP", port: 8000 }] }]);
  });

  it("with a gateway, admits the agent port from the gateway's Pods in its namespace only", () => {
    const np = desiredNetworkPolicy(
      sandbox({ image: "x", ports: [{ name: "http", port: 8000 }] }),
      undefined,
      "sandbox-system",
    );
    expect(np.spec!.ingress).toEqual([
      { ports: [{ protocol: "TCP", port: 8000 }] },
      {
        // One peer with both selectors (AND), not two peers (OR).
        from: [
          {
            namespaceSelector: {
              matchLabels: { "kubernetes.io/metadata.name": "sandbox-system" },
            },
            podSelector: { matchLabels: { "sandboxing.dev/gateway": "true" } },
          },
        ],
        ports: [{ protocol: "TCP", port: 15099 }],
      },
    ]);
    // No ports declared: the gateway's rule alone.
    expect(
      desiredNetworkPolicy(sandbox({ image: "x" }), undefined, "gw").spec!.ingress,
    ).toHaveLength(1);
  });
});

describe("desiredService", () => {
  it("exists only with ports", () => {
    expect(desiredService(sandbox({ image: "x" }))).toBeUndefined();
    const svc = desiredService(sandbox({ image: "x", ports: [{ name: "http", port: 8000 }] }))!;
    expect(svc.spec!.ports).toEqual([
      { name: "http", port: 8000, targetPort: 8000, protocol: "TCP" },
    ]);
    expect(svc.spec!.selector).toEqual({ [Labels.sandboxUid]: "uid-1" });
  });

  it("reports endpoints by cluster DNS name, with a URL where the name gives a scheme", () => {
    const s = sandbox({
      image: "x",
      ports: [
        { name: "http", port: 8000 },
        { name: "https-api", port: 8443 },
        { name: "db", port: 5432 },
      ],
    });
    expect(serviceEndpoints(s)).toEqual([
      { name: "http", port: 8000, host: "agent.team.svc", url: "http://agent.team.svc:8000" },
      { name: "https-api", port: 8443, host: "agent.team.svc", url: "https://agent.team.svc:8443" },
      { name: "db", port: 5432, host: "agent.team.svc" },
    ]);
  });
});

describe("the in-sandbox agent in the pod", () => {
  const sbx = sandbox({ image: "x", security: { readOnlyRootFilesystem: true } });
  const pod = desiredPod(sbx, EGRESS);
  const workload = pod.spec!.containers[0]!;

  it("is copied from the operator image by the last init container, with nothing but cp", () => {
    const install = pod.spec!.initContainers!.at(-1)!;
    expect(install.name).toBe("sandbox-agent-install");
    expect(install.image).toBe(EGRESS.image);
    expect(install.command).toEqual([
      "cp",
      "/app/dist/agent/sandbox-agent",
      "/.sandbox/sandbox-agent",
    ]);
    expect(install.securityContext).toMatchObject({
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
    });
  });

  it("is mounted read-only in the workload, which keeps its command and entrypoint", () => {
    expect(workload.volumeMounts).toContainEqual({
      name: "sandbox-agent",
      mountPath: "/.sandbox",
      readOnly: true,
    });
    expect(workload.command).toBeUndefined();
    expect(workload.args).toBeUndefined();
    expect(workload.securityContext?.readOnlyRootFilesystem).toBe(true);
  });

  it("starts from postStart, detached, on the Pod's loopback, with the credential's digest only", () => {
    expect(workload.lifecycle?.postStart?.exec?.command).toEqual([
      "/.sandbox/sandbox-agent",
      "--daemon",
      "--listen=127.0.0.1:15099",
      "--token-sha256-file=/.sandbox-credential/token.sha256",
    ]);
    const credential = pod.spec!.volumes!.find((v) => v.name === "sandbox-agent-credential");
    expect(credential?.secret).toEqual({
      secretName: `${sbx.metadata.name}-sandbox-agent`,
      items: [{ key: "token.sha256", path: "token.sha256" }],
      defaultMode: 0o444,
    });
    // Mounted nowhere else: neither the token nor its digest reaches another container.
    for (const c of pod.spec!.initContainers!)
      expect(c.volumeMounts?.map((m) => m.name)).not.toContain("sandbox-agent-credential");
  });

  it("with a gateway, listens on the Pod's addresses (the NetworkPolicy fences the port)", () => {
    const gw = desiredPod(sbx, EGRESS, { namespace: "gw", agentKey: Buffer.alloc(32, 1) });
    expect(gw.spec!.containers[0]!.lifecycle?.postStart?.exec?.command).toContain(
      "--listen=:15099",
    );
    // A different Pod: turning the gateway on replaces running sandboxes' Pods.
    expect(gw.metadata!.annotations!["sandboxing.dev/spec-hash"]).not.toBe(
      pod.metadata!.annotations!["sandboxing.dev/spec-hash"],
    );
  });

  it("derives the gateway's credential from the shared key and the sandbox's UID", () => {
    const key = Buffer.alloc(32, 7);
    const a = deriveAgentToken(key, "uid-1");
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(deriveAgentToken(key, "uid-1")).toBe(a);
    expect(deriveAgentToken(key, "uid-2")).not.toBe(a); // a re-created sandbox: another one
    expect(deriveAgentToken(Buffer.alloc(32, 8), "uid-1")).not.toBe(a);
  });

  it("gets a Secret per sandbox holding the token and its SHA-256", () => {
    const secret = desiredAgentSecret(sbx, "t".repeat(43));
    expect(secret.metadata?.name).toBe(`${sbx.metadata.name}-sandbox-agent`);
    expect(secret.metadata?.ownerReferences?.[0]).toMatchObject({
      uid: sbx.metadata.uid,
      controller: true,
    });
    expect(secret.immutable).toBe(true);
    expect(secret.stringData?.["token.sha256"]).toBe(
      createHash("sha256").update("t".repeat(43)).digest("hex"),
    );
  });
});
