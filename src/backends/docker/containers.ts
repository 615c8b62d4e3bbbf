// What the docker backend asks the Engine to create for a sandbox, as plain
// create options. Pure: the same Sandbox and settings always give the same
// options (and the same spec hash), which is how drift is detected.
//
//   network   sbx.<ns>.<name>.<uid8>.network  a bridge of its own, no ICC
//   sidecar   sbx.<ns>.<name>.<uid8>.egress   operator image: lockdown, then proxy
//   workload  sbx.<ns>.<name>.<uid8>          joins the sidecar's network namespace
//   volume    sbx.<ns>.<name>.<uid8>.workspace

import { posix } from "node:path";
import type { ContainerCreateOptions, NetworkCreateOptions } from "dockerode";
import { parseQuantity } from "../../api/quantity.js";
import type { Sandbox } from "../../api/sandbox.js";
import {
  POLICY_DIR as CONTRACT_POLICY_DIR,
  EGRESS_CONTRACT,
  EGRESS_EXECUTABLE,
  POLICY_ACK_FILE,
  policyAckFlags,
  policyDocument,
  sidecarFlags,
} from "../../egress/contract.js";
import { workloadProxyEnv } from "../../egress/proxy-env.js";
import { keyOf } from "../../kube/object-key.js";
import { specHash } from "../spec-hash.js";
import { withAgentMount, withAgentPort } from "./agent.js";
import type { AllowedHostPath } from "./host-paths.js";
import {
  DockerLabels,
  identityOf,
  Role,
  resourceLabels,
  resourceName,
  type SandboxIdentity,
} from "./names.js";
import { type WorkspacePlan, workspacePlan } from "./workspace.js";

export const DEFAULT_USER = 1000;
/** The CLI inside the operator image (see the Dockerfile). */
export const OPERATOR_MAIN = "/app/dist/cli/main.js";
export const WORKSPACE = "/workspace";
/** Where the sidecar reads the policy (the egress contract's). */
export const POLICY_DIR = CONTRACT_POLICY_DIR;
export const POLICY_FILE = EGRESS_CONTRACT.policyFile;
/** Under `settings.policyDir`: the directory of the sidecars' acknowledgement files, one per sandbox UID. */
export const POLICY_ACKS_DIR_NAME = "applied";
/** What the sidecar logs once the lockdown is installed and every listener is bound. */
export const SIDECAR_READY_MESSAGE = "egress sidecar ready";

export interface DockerSettings {
  /** The operator image: carries `sandbox-operator egress`. */
  egressImage: string;
  /** Which operator installation owns what it creates (label value). */
  owner: string;
  /** Resolver the sidecar forwards allowed names to ("host" or "host:port"). */
  upstreamDns: string;
  /** Host address declared ports are published on. */
  publishAddress: string;
  /** --docker-allowed-host-paths; empty or absent: no host path may be mounted. */
  allowedHostPaths?: readonly AllowedHostPath[];
  /** The Docker host's file system is this process's (unix socket): host paths' symlinks are resolved here. Default true. */
  hostPathsLocal?: boolean;
  /**
   * A directory of the Docker host, which must be this process's file system
   * too (a local daemon): each sandbox's policy file lives in `<dir>/<uid>/`,
   * bind-mounted read-only into its sidecar alone, and a policy change is a
   * local write and rename (about a millisecond) that the sidecar's inotify
   * watch sees. Absent: the policy is uploaded into the sidecar container
   * through the daemon (an archive extraction the daemon runs in a helper
   * process, about 90 ms here; bench/results/pools.json).
   *
   * With it, each sidecar also acknowledges every policy it loads, in
   * `<dir>/applied/<uid>` (bind-mounted into the sidecar alone), and a
   * sandbox's egress is ready only once its current policy is acknowledged
   * (policy-applied.ts).
   */
  policyDir?: string;
}

/** A hostPath mount as judged: the resolved host path, and whether it is read-only. */
export interface HostBind {
  source: string;
  target: string;
  readOnly: boolean;
}

export interface DesiredSandbox {
  id: SandboxIdentity;
  network: NetworkCreateOptions & { Name: string };
  /** The workspace volume to create; absent when the sandbox mounts an existing one. */
  volume?: { Name: string; Labels: Record<string, string> };
  workspace: WorkspacePlan;
  sidecar: ContainerCreateOptions & { name: string };
  workload: ContainerCreateOptions & { name: string };
  /** The policy file the sidecar follows; rewritten in place when only names change. */
  policy: string;
  /** With `settings.policyDir`: the host directory bind-mounted as the sidecar's policy directory. */
  policyHostDir?: string;
  /** With `settings.policyDir`: the host file the sidecar acknowledges each policy load in. */
  policyAckHostFile?: string;
}

/** Settings with no Docker equivalent: a user's mistake on this backend, reported as a condition. */
export function unsupportedFields(sandbox: Sandbox): string | undefined {
  const { spec } = sandbox;
  if (spec.env?.some((e) => e.valueFrom)) {
    return "spec.env[].valueFrom: Secret references are supported on the pod backend only";
  }
  if (spec.security?.runtimeClassName) {
    return "spec.security.runtimeClassName: RuntimeClasses are supported on the pod backend only";
  }
  const source = spec.mounts?.find((m) => m.secret || m.configMap);
  if (source) {
    return `spec.mounts (${source.mountPath}): Secret and ConfigMap mounts are supported on the pod backend only (the operator never reads Secrets)`;
  }
  return undefined;
}

/**
 * `binds`: the spec's hostPath mounts, judged against the allowlist and
 * resolved by the shell (a refused one never gets here: the shell refuses the
 * sandbox). Absent (observe, remove) or empty when there are none.
 */
export function desiredSandbox(
  sandbox: Sandbox,
  settings: DockerSettings,
  binds: readonly HostBind[] = [],
): DesiredSandbox {
  const id = identityOf(sandbox);
  const generation = String(sandbox.metadata.generation ?? 0);
  const labels = (role: Role, extra: Record<string, string> = {}) =>
    resourceLabels(id, role, settings.owner, extra);
  const policy = policyFile(sandbox);
  const sidecarName = resourceName(id, Role.sidecar);
  const workspace = workspacePlan(sandbox, settings.owner);
  const networkName = resourceName(id, Role.network);

  const policyHostDir = settings.policyDir && posix.join(settings.policyDir, id.uid);
  const policyAckHostFile =
    settings.policyDir && posix.join(settings.policyDir, POLICY_ACKS_DIR_NAME, id.uid);
  const sidecarSpec = withPolicyMount(
    withAgentPort(sidecarOptions(sandbox, settings, networkName), settings.publishAddress),
    policyHostDir,
  );
  const sidecar = {
    name: sidecarName,
    // Outside the spec hash: a sidecar an earlier controller made without
    // it is kept (replacing it would restart its workload) and reported as
    // unacknowledged (policy-applied.ts); new sidecars have it.
    ...withPolicyAck(sidecarSpec, policyAckHostFile),
    Labels: labels(Role.sidecar, {
      [DockerLabels.generation]: generation,
      // The lockdown holds no policy: every egress change (names, addresses,
      // defaultAction) is the policy file's, followed live by the sidecar.
      [DockerLabels.specHash]: specHash({ sidecarSpec }),
    }),
  };
  const workloadSpec = withAgentMount(workloadOptions(sandbox, sidecarName, workspace, binds));
  const workload = {
    name: resourceName(id, Role.workload),
    ...workloadSpec,
    Labels: labels(Role.workload, {
      [DockerLabels.generation]: generation,
      // The sidecar's hash too: a new sidecar is a new network namespace.
      [DockerLabels.specHash]: specHash({
        workloadSpec,
        sidecar: sidecar.Labels[DockerLabels.specHash],
      }),
    }),
  };
  return {
    id,
    network: {
      Name: networkName,
      Driver: "bridge",
      CheckDuplicate: true,
      Labels: labels(Role.network),
      // One sandbox per bridge, and no traffic between endpoints even so.
      Options: { "com.docker.network.bridge.enable_icc": "false" },
    },
    volume: workspace.create,
    workspace,
    sidecar,
    workload,
    policy,
    ...(policyHostDir ? { policyHostDir } : {}),
    ...(policyAckHostFile ? { policyAckHostFile } : {}),
  };
}

/**
 * The acknowledgement file from the host, writable, in the sidecar alone (the
 * workload has mounts of its own: it shares only the network namespace), and
 * the flag that has the sidecar write it.
 */
function withPolicyAck(
  options: ContainerCreateOptions,
  hostFile: string | undefined,
): ContainerCreateOptions {
  if (!hostFile) return options;
  return {
    ...options,
    Cmd: [...((options.Cmd as string[] | undefined) ?? []), ...policyAckFlags()],
    HostConfig: {
      ...options.HostConfig,
      Mounts: [
        ...(options.HostConfig?.Mounts ?? []),
        { Type: "bind", Source: hostFile, Target: POLICY_ACK_FILE, ReadOnly: false },
      ],
    },
  };
}

/** Whether a sidecar container was made to acknowledge its policy loads (a newer controller made it). */
export function acknowledgesPolicy(cmd: readonly string[] | undefined): boolean {
  const [flag] = policyAckFlags();
  return !!cmd?.includes(flag!);
}

/** The sidecar's policy directory from the host, read-only: only the controller writes it. */
function withPolicyMount(
  options: ContainerCreateOptions,
  hostDir: string | undefined,
): ContainerCreateOptions {
  if (!hostDir) return options;
  return {
    ...options,
    HostConfig: {
      ...options.HostConfig,
      Mounts: [
        ...(options.HostConfig?.Mounts ?? []),
        { Type: "bind", Source: hostDir, Target: POLICY_DIR, ReadOnly: true },
      ],
    },
  };
}

function sidecarOptions(
  sandbox: Sandbox,
  settings: DockerSettings,
  networkName: string,
): ContainerCreateOptions {
  const ports = sandbox.spec.ports ?? [];
  const key = keyOf(sandbox);
  return {
    Image: settings.egressImage,
    // The static Go egress binary as PID 1 rather than the image's tini: an init
    // started as root would keep NET_ADMIN for the sandbox's whole life; the
    // binary drops it after the lockdown (and starts in milliseconds).
    Entrypoint: [EGRESS_EXECUTABLE],
    Cmd: [
      "egress",
      "--lockdown",
      // The whole contract, explicitly: the CLI's defaults are not relied on.
      ...sidecarFlags(EGRESS_CONTRACT),
      `--sandbox=${key}`,
      `--upstream-dns=${settings.upstreamDns}`,
    ],
    // Root only for the lockdown: the process then switches to the sidecar UID,
    // which drops every capability (setuid clears them), before it serves.
    User: "0:0",
    ExposedPorts: Object.fromEntries(ports.map((p) => [`${p.port}/tcp`, {}])),
    HostConfig: {
      NetworkMode: networkName,
      PortBindings: Object.fromEntries(
        ports.map((p) => [`${p.port}/tcp`, [{ HostIp: settings.publishAddress, HostPort: "" }]]),
      ),
      CapDrop: ["ALL"],
      // NET_RAW: iptables-legacy, where the host uses it, opens a raw socket.
      // SETUID/SETGID: to switch to the sidecar UID, which clears all four.
      CapAdd: ["NET_ADMIN", "NET_RAW", "SETGID", "SETUID"],
      SecurityOpt: ["no-new-privileges"],
      PidsLimit: 128,
      Memory: 128 * 2 ** 20,
      MemorySwap: 128 * 2 ** 20,
      NanoCpus: 1e9,
      // The embedded resolver (127.0.0.11) forwards here too, though the
      // lockdown routes every workload query to the sidecar instead.
      Dns: [settings.upstreamDns.replace(/:\d+$/, "")],
      RestartPolicy: { Name: "no" },
    },
  };
}

function workloadOptions(
  sandbox: Sandbox,
  sidecarName: string,
  workspace: WorkspacePlan,
  binds: readonly HostBind[],
): ContainerCreateOptions {
  const { spec } = sandbox;
  const uid = spec.security?.runAsUser ?? DEFAULT_USER;
  const gid = spec.security?.runAsGroup ?? DEFAULT_USER;
  const memory = Math.round(parseQuantity(spec.resources.memory));
  const env = {
    ...Object.fromEntries((spec.env ?? []).map((e) => [e.name, e.value ?? ""])),
    ...workloadProxyEnv(),
  };
  return {
    Image: spec.image,
    ...(spec.command ? { Entrypoint: spec.command } : {}),
    ...(spec.args ? { Cmd: spec.args } : {}),
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    User: `${uid}:${gid}`,
    WorkingDir: spec.workingDir ?? WORKSPACE,
    HostConfig: {
      // Same network namespace as the sidecar: its firewall is this workload's.
      NetworkMode: `container:${sidecarName}`,
      CapDrop: ["ALL"],
      SecurityOpt: ["no-new-privileges"],
      PidsLimit: spec.resources.pids,
      Memory: memory,
      MemorySwap: memory,
      NanoCpus: Math.round(parseQuantity(spec.resources.cpu) * 1e9),
      ReadonlyRootfs: spec.security?.readOnlyRootFilesystem ?? false,
      Tmpfs: { "/tmp": "rw,nosuid,nodev,mode=1777" },
      Mounts: [
        { Type: "volume", Source: workspace.volume, Target: workspace.target },
        ...binds.map((b) => ({
          Type: "bind" as const,
          Source: b.source,
          Target: b.target,
          ReadOnly: b.readOnly,
          // No mount made later under the host path reaches the sandbox.
          BindOptions: { Propagation: "rprivate" as const },
        })),
      ],
      // An init reaps orphaned children (what a fork bomb leaves) and forwards signals.
      Init: true,
      RestartPolicy: { Name: "no" },
    },
  };
}

function policyFile(sandbox: Sandbox): string {
  const egress = sandbox.spec.network.egress;
  return `${policyDocument(egress)}\n`;
}
