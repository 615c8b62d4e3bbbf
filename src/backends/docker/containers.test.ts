import type { ContainerCreateOptions } from "dockerode";
import { describe, expect, it } from "vitest";
import type { Sandbox } from "../../api/sandbox.js";
import { type SandboxSpecInput, SandboxSpecSchema } from "../../api/sandbox-spec.js";
import { POLICY_ACK_FILE, policyAckFlags } from "../../egress/contract.js";
import { specHash } from "../spec-hash.js";
import {
  acknowledgesPolicy,
  type DockerSettings,
  desiredSandbox,
  unsupportedFields,
} from "./containers.js";
import { DockerLabels, sandboxKeyOf } from "./names.js";

function sandbox(spec: SandboxSpecInput, generation = 1): Sandbox {
  return {
    apiVersion: "sandboxing.dev/v1alpha1",
    kind: "Sandbox",
    metadata: { name: "agent", namespace: "team", uid: "0123456789abcdef", generation },
    spec: SandboxSpecSchema.parse(spec),
  };
}

const SETTINGS: DockerSettings = {
  egressImage: "sandbox-operator:test",
  owner: "o1",
  upstreamDns: "192.0.2.53",
  publishAddress: "127.0.0.1",
};
const BASE: SandboxSpecInput = {
  image: "python:3.12",
  resources: { cpu: "500m", memory: "256Mi", pids: 100 },
};
const hashes = (spec: SandboxSpecInput, generation = 1) => {
  const d = desiredSandbox(sandbox(spec, generation), SETTINGS);
  return {
    sidecar: d.sidecar.Labels?.[DockerLabels.specHash],
    workload: d.workload.Labels?.[DockerLabels.specHash],
  };
};

describe("desiredSandbox", () => {
  const d = desiredSandbox(sandbox({ ...BASE, ports: [{ name: "http", port: 8080 }] }), SETTINGS);

  it("names everything after the sandbox, and labels it with its identity", () => {
    expect(d.workload.name).toBe("sbx.team.agent.01234567");
    expect(d.sidecar.name).toBe("sbx.team.agent.01234567.egress");
    expect(d.network.Name).toBe("sbx.team.agent.01234567.network");
    expect(d.volume?.Name).toBe("sbx.team.agent.01234567.workspace");
    expect(sandboxKeyOf(d.workload.Labels)).toBe("team/agent");
    expect(d.workload.Labels).toMatchObject({
      [DockerLabels.sandboxUid]: "0123456789abcdef",
      [DockerLabels.owner]: "o1",
      [DockerLabels.generation]: "1",
      [DockerLabels.role]: "workload",
    });
  });

  it("hardens the workload and converts quantities", () => {
    expect(d.workload.User).toBe("1000:1000");
    expect(d.workload.HostConfig).toMatchObject({
      NetworkMode: `container:${d.sidecar.name}`,
      CapDrop: ["ALL"],
      SecurityOpt: ["no-new-privileges"],
      PidsLimit: 100,
      Memory: 256 * 2 ** 20,
      MemorySwap: 256 * 2 ** 20,
      NanoCpus: 5e8,
      ReadonlyRootfs: false,
      Init: true,
    });
    // The agent's volume: delivered into before the start, the image untouched.
    expect(d.workload.HostConfig?.Mounts).toContainEqual({
      Type: "volume",
      Source: "",
      Target: "/.sandbox",
    });
    expect(d.workload.Env).toContain("HTTPS_PROXY=http://127.0.0.1:15001");
  });

  it("gives the sidecar only what the lockdown needs, and publishes ports on it", () => {
    expect(d.sidecar.HostConfig?.CapAdd).toEqual(["NET_ADMIN", "NET_RAW", "SETGID", "SETUID"]);
    expect(d.sidecar.Cmd).toContain("--lockdown");
    expect(d.sidecar.Cmd).toContain("--upstream-dns=192.0.2.53");
    expect(d.sidecar.HostConfig?.PortBindings).toEqual({
      "8080/tcp": [{ HostIp: "127.0.0.1", HostPort: "" }],
      // The in-sandbox agent's port, published like declared ports.
      "15099/tcp": [{ HostIp: "127.0.0.1", HostPort: "" }],
    });
    expect(d.network.Options).toEqual({ "com.docker.network.bridge.enable_icc": "false" });
  });

  it("rebuilds only what a change needs", () => {
    const base = hashes(BASE);
    const names = {
      network: { egress: { rules: [{ action: "allow" as const, target: "pypi.org" }] } },
    };
    const address = {
      network: { egress: { rules: [{ action: "allow" as const, target: "192.0.2.0/24" }] } },
    };
    const allow = { network: { egress: { defaultAction: "allow" as const } } };
    // Every egress rule and defaultAction is followed live by the sidecar (the
    // firewall holds no policy): nothing is rebuilt.
    expect(hashes({ ...BASE, ...names }, 2)).toEqual(base);
    expect(hashes({ ...BASE, ...address }, 2)).toEqual(base);
    expect(hashes({ ...BASE, ...allow }, 2)).toEqual(base);
    // The workload's own spec: the workload only.
    const image = hashes({ ...BASE, image: "python:3.13" }, 2);
    expect(image.sidecar).toBe(base.sidecar);
    expect(image.workload).not.toBe(base.workload);
  });

  it("keeps the policy acknowledgement out of the sidecar's spec hash", () => {
    // A sidecar an earlier controller made without it is kept, not recreated
    // with its workload: the hash is the one of the options without it.
    const local = desiredSandbox(sandbox(BASE), { ...SETTINGS, policyDir: "/run/p" });
    const { name: _, Labels, ...options } = local.sidecar;
    const without: ContainerCreateOptions = {
      ...options,
      Cmd: (options.Cmd as string[]).filter((a) => !policyAckFlags().includes(a)),
      HostConfig: {
        ...options.HostConfig,
        Mounts: options.HostConfig?.Mounts?.filter((m) => m.Target !== POLICY_ACK_FILE),
      },
    };
    expect(without.Cmd).toHaveLength((options.Cmd as string[]).length - 1);
    expect(Labels?.[DockerLabels.specHash]).toBe(specHash({ sidecarSpec: without }));
    expect(acknowledgesPolicy(local.sidecar.Cmd as string[])).toBe(true);
    expect(acknowledgesPolicy(d.sidecar.Cmd as string[])).toBe(false);
    expect(acknowledgesPolicy(undefined)).toBe(false);
  });

  it("reports fields the docker backend cannot honour", () => {
    expect(unsupportedFields(sandbox(BASE))).toBeUndefined();
    expect(
      unsupportedFields(
        sandbox({
          ...BASE,
          env: [{ name: "T", valueFrom: { secretKeyRef: { name: "s", key: "k" } } }],
        }),
      ),
    ).toMatch(/valueFrom/);
    expect(
      unsupportedFields(sandbox({ ...BASE, security: { runtimeClassName: "gvisor" } })),
    ).toMatch(/runtimeClassName/);
  });
});
