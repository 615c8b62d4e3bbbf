// The egress contract: what the firewall (egress-init), the sidecar (egress),
// the CLI and both backends must agree on, stated once. A backend builds the
// sidecar's command line from it explicitly (lockdownFlags, sidecarFlags)
// rather than relying on the CLI's defaults, and the CLI's defaults are these
// values too, so a change here reaches every party at once.
import type { EgressPolicy } from "../api/sandbox-spec.js";
import { parseTarget } from "./policy/target.js";

/** The sidecar's UID: the only one the firewall lets out. No workload may run as it. */
export const EGRESS_SIDECAR_UID = 1337;

export interface SidecarPortMap {
  /** Explicit proxy (HTTP_PROXY / HTTPS_PROXY), on loopback. */
  proxy: number;
  /** DNS proxy (UDP and TCP), on loopback; the lockdown redirects port 53 here. */
  dns: number;
  /** Transparent listener for redirected port-80 traffic, on loopback. */
  http: number;
  /** Transparent listener for redirected port-443 traffic, on loopback. */
  tls: number;
  /**
   * The probe endpoint (/healthz, /readyz and nothing else), on every address:
   * the kubelet's startup and readiness probes reach it over the network.
   */
  health: number;
  /** /metrics and detailed /readyz, on loopback only. */
  metrics: number;
}

export const EGRESS_PORTS: Readonly<SidecarPortMap> = Object.freeze({
  proxy: 15001,
  dns: 15053,
  http: 15080,
  tls: 15443,
  health: 15021,
  metrics: 15020,
});

/**
 * The egress executable inside the operator image: the lockdown (`egress-init`)
 * and the sidecar (`egress`) as one static Go binary (native/egress), what
 * both backends run. Same subcommands, flags and log lines as
 * `sandbox-operator egress-init` / `egress`, the TypeScript implementation
 * kept as bench/egress's baseline.
 */
export const EGRESS_EXECUTABLE = "/app/dist/egress/sandbox-egress";

/** Where the sidecar (and egress-init) read the policy, in both backends. */
export const POLICY_DIR = "/etc/sandbox-egress";
export const POLICY_FILE_NAME = "policy.json";
export const POLICY_FILE = `${POLICY_DIR}/${POLICY_FILE_NAME}`;

/**
 * Where a docker sidecar acknowledges each load of its policy file (a JSON
 * record naming the sha256 of the bytes it put in force: policy-ack.ts). A
 * file of the Docker host bind-mounted into the sidecar container alone: the
 * workload shares the sidecar's network namespace, not its mounts, so it can
 * neither read nor forge it. Not under POLICY_DIR, which is read-only.
 */
export const POLICY_ACK_FILE = "/run/sandbox-egress/applied";

export interface EgressContract {
  sidecarUid: number;
  ports: Readonly<SidecarPortMap>;
  policyFile: string;
  policyAckFile: string;
}

export const EGRESS_CONTRACT: Readonly<EgressContract> = Object.freeze({
  sidecarUid: EGRESS_SIDECAR_UID,
  ports: EGRESS_PORTS,
  policyFile: POLICY_FILE,
  policyAckFile: POLICY_ACK_FILE,
});

/**
 * The policy file's format: the `network.egress` object as JSON (which the
 * YAML reader also accepts), with `rules` always present.
 */
export function policyDocument(policy: EgressPolicy): string {
  return JSON.stringify({ defaultAction: policy.defaultAction, rules: policy.rules ?? [] });
}

/** Whether a rule's target is an IP address or CIDR (enforced by the kernel firewall), not a name. */
export function isAddressTarget(target: string): boolean {
  return parseTarget(target)?.kind === "address";
}

/** `egress-init`'s flags: what the firewall must know of the sidecar. */
export function lockdownFlags(contract: EgressContract = EGRESS_CONTRACT): string[] {
  return [
    `--sidecar-uid=${contract.sidecarUid}`,
    `--dns-port=${contract.ports.dns}`,
    `--http-port=${contract.ports.http}`,
    `--tls-port=${contract.ports.tls}`,
    `--policy-file=${contract.policyFile}`,
  ];
}

/**
 * The acknowledgement's flag: the docker backend passes it when it can read
 * the file back (a local daemon, with a host policy directory); the pod
 * backend's sidecars acknowledge through the policy endpoint instead.
 */
export function policyAckFlags(contract: EgressContract = EGRESS_CONTRACT): string[] {
  return [`--policy-ack-file=${contract.policyAckFile}`];
}

/** `egress`'s flags: the lockdown's, and where the sidecar serves. */
export function sidecarFlags(contract: EgressContract = EGRESS_CONTRACT): string[] {
  return [
    ...lockdownFlags(contract),
    `--proxy-port=${contract.ports.proxy}`,
    `--health-port=${contract.ports.health}`,
    `--metrics-port=${contract.ports.metrics}`,
  ];
}
