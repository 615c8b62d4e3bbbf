// The egress contract is stated once, and both backends pass all of it to the
// sidecar explicitly (neither relies on the CLI's defaults).
import { describe, expect, it } from "vitest";
import type { Sandbox } from "../api/sandbox.js";
import { EGRESS_SIDECAR_UID as API_UID, SandboxSpecSchema } from "../api/sandbox-spec.js";
import { desiredSandbox } from "../backends/docker/containers.js";
import { egressInitContainers } from "../backends/pod/egress.js";
import { EGRESS_INIT_USAGE, EGRESS_USAGE } from "../cli/egress.js";
import {
  EGRESS_CONTRACT,
  EGRESS_PORTS,
  EGRESS_SIDECAR_UID,
  isAddressTarget,
  lockdownFlags,
  POLICY_ACK_FILE,
  POLICY_FILE,
  policyAckFlags,
  policyDocument,
  sidecarFlags,
} from "./contract.js";
import { DEFAULT_LISTEN_PORTS, DEFAULT_SIDECAR_UID } from "./firewall/index.js";
import {
  DEFAULT_HEALTH_LISTEN,
  DEFAULT_METRICS_LISTEN,
  DEFAULT_SIDECAR_PORTS,
} from "./sidecar/index.js";

describe("the egress contract", () => {
  it("is what the firewall, the sidecar, the API and the CLI default to", () => {
    expect(API_UID).toBe(EGRESS_SIDECAR_UID);
    expect(DEFAULT_SIDECAR_UID).toBe(EGRESS_SIDECAR_UID);
    expect(DEFAULT_LISTEN_PORTS).toEqual({
      dns: EGRESS_PORTS.dns,
      http: EGRESS_PORTS.http,
      tls: EGRESS_PORTS.tls,
    });
    expect(DEFAULT_SIDECAR_PORTS).toEqual({
      proxy: EGRESS_PORTS.proxy,
      dns: EGRESS_PORTS.dns,
      http: EGRESS_PORTS.http,
      tls: EGRESS_PORTS.tls,
    });
    expect(DEFAULT_HEALTH_LISTEN.port).toBe(EGRESS_PORTS.health);
    expect(DEFAULT_METRICS_LISTEN).toEqual({ host: "127.0.0.1", port: EGRESS_PORTS.metrics });
    expect(EGRESS_INIT_USAGE).toContain(`(default ${EGRESS_SIDECAR_UID})`);
    expect(EGRESS_USAGE).toContain(`(default ${EGRESS_PORTS.metrics})`);
  });

  it.each([
    ["192.0.2.10", true],
    ["10.20.0.0/16", true],
    ["10.20.1.2/16", true],
    ["2001:db8::1", true],
    ["2001:db8::/32", true],
    ["api.example.com", false],
    ["*.example.org", false],
    ["1.2.3.com", false],
    ["1.2.3.999", false], // not an address, and the CRD refuses it as a name
  ])("classifies %s as an address target: %s", (target, address) => {
    expect(isAddressTarget(target)).toBe(address);
  });

  it("writes the policy file as JSON with rules always present", () => {
    expect(JSON.parse(policyDocument({ defaultAction: "deny" }))).toEqual({
      defaultAction: "deny",
      rules: [],
    });
  });

  it("the pod backend passes every flag of the contract to egress-init and the sidecar", () => {
    const [init, sidecar] = egressInitContainers("ns/sbx", { image: "op:1" });
    expect(init!.args).toEqual(["egress-init", ...lockdownFlags(EGRESS_CONTRACT)]);
    expect(sidecar!.args).toEqual(["egress", ...sidecarFlags(EGRESS_CONTRACT), "--sandbox=ns/sbx"]);
    expect(sidecar!.securityContext?.runAsUser).toBe(EGRESS_SIDECAR_UID);
    // The kubelet's probes reach the probe endpoint, which is all they need.
    expect(sidecar!.startupProbe?.httpGet).toEqual({ path: "/readyz", port: EGRESS_PORTS.health });
  });

  it("the docker backend passes every flag of the contract to the sidecar", () => {
    const sandbox: Sandbox = {
      apiVersion: "sandboxing.dev/v1alpha1",
      kind: "Sandbox",
      metadata: { name: "a", namespace: "n", uid: "0123456789abcdef", generation: 1 },
      spec: SandboxSpecSchema.parse({
        image: "x",
        resources: { cpu: "1", memory: "64Mi", pids: 64 },
      }),
    };
    const d = desiredSandbox(sandbox, {
      egressImage: "op:1",
      owner: "o",
      upstreamDns: "192.0.2.53",
      publishAddress: "127.0.0.1",
    });
    expect(d.sidecar.Cmd).toEqual(expect.arrayContaining(sidecarFlags(EGRESS_CONTRACT)));
    expect(sidecarFlags()).toContain(`--policy-file=${POLICY_FILE}`);
    expect(sidecarFlags()).toContain(`--sidecar-uid=${EGRESS_SIDECAR_UID}`);
    // No host directory (a remote daemon): nothing to acknowledge into.
    expect(d.sidecar.Cmd).not.toEqual(expect.arrayContaining(policyAckFlags()));
    expect(d.policyAckHostFile).toBeUndefined();

    // With one: the acknowledgement's flag, and its file from the host, writable, in the sidecar alone.
    const local = desiredSandbox(sandbox, {
      egressImage: "op:1",
      owner: "o",
      upstreamDns: "192.0.2.53",
      publishAddress: "127.0.0.1",
      policyDir: "/run/p",
    });
    expect(local.sidecar.Cmd).toEqual(
      expect.arrayContaining([...sidecarFlags(EGRESS_CONTRACT), ...policyAckFlags()]),
    );
    expect(policyAckFlags()).toEqual([`--policy-ack-file=${POLICY_ACK_FILE}`]);
    expect(local.policyAckHostFile).toBe("/run/p/applied/0123456789abcdef");
    expect(local.sidecar.HostConfig?.Mounts).toContainEqual({
      Type: "bind",
      Source: local.policyAckHostFile,
      Target: POLICY_ACK_FILE,
      ReadOnly: false,
    });
    const workloadMounts = JSON.stringify(local.workload.HostConfig?.Mounts);
    expect(workloadMounts).not.toContain("/run/p");
  });
});
