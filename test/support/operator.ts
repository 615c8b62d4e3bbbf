// Run the Sandbox controller in the test process, as a given identity, against
// the shared control plane, watching one namespace.
import { randomBytes } from "node:crypto";
import type Docker from "dockerode";
import { Registry } from "prom-client";
import type { AllowedHostPath } from "../../src/backends/docker/host-paths.js";
import { loadKubeConfig } from "../../src/kube/config.js";
import { createLogger } from "../../src/observability/logger.js";
import { type RunningPoolControllers, startPoolControllers } from "../../src/pool/start.js";
import {
  type RunningSandboxController,
  type SandboxControllerOptions,
  startSandboxController,
} from "../../src/sandbox/controller.js";
import {
  type RunningSnapshotController,
  startSnapshotController,
} from "../../src/snapshot/start.js";
import { buildAgent } from "./agent.js";
import { userKubeconfigPath } from "./cluster.js";
import { OPERATOR_IMAGE } from "./docker.js";
import { eventually } from "./eventually.js";

export interface OperatorOptions {
  namespace: string;
  stallTimeoutSeconds?: number;
  defaultBackend?: "pod" | "docker";
  /** Enables the docker backend. */
  docker?: SandboxControllerOptions["docker"];
  egressImage?: string;
  /** The pod backend's live policy channel (src/policy-server/). */
  policyChannel?: SandboxControllerOptions["policyChannel"];
  /** The gateway reaches pod-backend agents at the pod IP (the --gateway-namespace flag). */
  gateway?: SandboxControllerOptions["gateway"];
  /** A Lease (in the watched namespace unless said otherwise); omitted: no leader election. */
  leaderElection?: { name: string; namespace?: string; leaseDurationMs?: number };
}

export type RunningOperator = RunningSandboxController;

/** As a static identity (operator-0 ... operator-3): the audit log tells them apart. */
export function startOperator(opts: OperatorOptions & { user: string }): Promise<RunningOperator> {
  return startOperatorWithKubeconfig(userKubeconfigPath(opts.user), opts, opts.user);
}

export async function startOperatorWithKubeconfig(
  kubeconfig: string,
  opts: OperatorOptions,
  name = "operator",
): Promise<RunningOperator> {
  const kubeConfig = loadKubeConfig({ kubeconfig, qps: 100, burst: 200 });
  const controller = await startSandboxController({
    kubeConfig,
    namespaces: [opts.namespace],
    defaultBackend: opts.defaultBackend ?? "pod",
    egressImage: opts.egressImage ?? "sandbox-operator:dev",
    docker: opts.docker,
    policyChannel: opts.policyChannel,
    ...(opts.gateway ? { gateway: opts.gateway } : {}),
    concurrency: 4,
    stallTimeoutSeconds: opts.stallTimeoutSeconds ?? 300,
    leaderElection: opts.leaderElection && {
      namespace: opts.leaderElection.namespace ?? opts.namespace,
      name: opts.leaderElection.name,
      identity: `${name}-${randomBytes(3).toString("hex")}`,
      leaseDurationMs: opts.leaderElection.leaseDurationMs,
    },
    registry: new Registry(),
    log: createLogger({ level: process.env.TEST_LOG_LEVEL ?? "silent" }),
  });
  await eventually(() => {
    if (!controller.ready()) throw new Error("informers not synced");
  });
  return controller;
}

/**
 * The operator with the docker backend as the docker suites run it: the
 * sandboxes' objects labelled with `owner` (removeOwnedBy cleans them up),
 * published on loopback, the operator image as the egress image.
 */
export function startDockerOperator(opts: {
  namespace: string;
  user: string;
  engine: Docker;
  owner: string;
  /** The resolver the sidecars ask (a stand-in internet's, or loopback for none). */
  upstreamDns: string;
  stallTimeoutSeconds?: number;
  /** --docker-allowed-host-paths (default: none). */
  allowedHostPaths?: readonly AllowedHostPath[];
  /** --docker-policy-dir: false uploads each policy through the daemon, as with a remote one. */
  policyDir?: false;
}): Promise<RunningOperator> {
  // The docker backend delivers the in-sandbox agent into every workload and
  // fails each reconcile (transient, backed off for minutes) while the binary
  // is missing: a suite run on its own, in a fresh work tree, must build it.
  buildAgent();
  return startOperator({
    namespace: opts.namespace,
    user: opts.user,
    defaultBackend: "docker",
    egressImage: OPERATOR_IMAGE,
    stallTimeoutSeconds: opts.stallTimeoutSeconds,
    docker: {
      client: opts.engine,
      settings: {
        owner: opts.owner,
        upstreamDns: opts.upstreamDns,
        publishAddress: "127.0.0.1",
        allowedHostPaths: opts.allowedHostPaths,
        policyDir:
          opts.policyDir === false
            ? undefined
            : `/run/sandbox-operator-test/${opts.owner}/policies`,
      },
      sweepIntervalMs: 2000,
    },
  });
}

/** The warm pool and claim controllers, in the test process, watching one namespace. */
export async function startPools(opts: {
  namespace: string;
  liveEgress?: Parameters<typeof startPoolControllers>[0]["liveEgress"];
  user?: string;
  defaultBackend?: "pod" | "docker";
  concurrency?: number;
  leaderElection?: { name: string; leaseDurationMs?: number };
  registry?: Registry;
  /** A Sandbox controller's informer to share (as the CLI does); absent: the pools watch their own. */
  sandboxes?: RunningOperator["allSandboxes"];
  /** A Sandbox controller's status writes, for the claims to read through (as the CLI does). */
  sandboxStatusWrites?: RunningOperator["sandboxStatusWrites"];
  refillHold?: Parameters<typeof startPoolControllers>[0]["refillHold"];
}): Promise<RunningPoolControllers> {
  const kubeConfig = loadKubeConfig({
    kubeconfig: userKubeconfigPath(opts.user ?? "operator-1"),
    qps: 500,
    burst: 1000,
  });
  const pools = await startPoolControllers({
    kubeConfig,
    namespaces: [opts.namespace],
    defaultBackend: opts.defaultBackend ?? "pod",
    liveEgress: opts.liveEgress,
    concurrency: opts.concurrency ?? 8,
    sandboxes: opts.sandboxes,
    sandboxStatusWrites: opts.sandboxStatusWrites,
    ...(opts.refillHold ? { refillHold: opts.refillHold } : {}),
    leaderElection: opts.leaderElection && {
      namespace: opts.namespace,
      name: opts.leaderElection.name,
      identity: `pools-${randomBytes(3).toString("hex")}`,
      leaseDurationMs: opts.leaderElection.leaseDurationMs,
    },
    registry: opts.registry ?? new Registry(),
    log: createLogger({ level: process.env.TEST_LOG_LEVEL ?? "silent" }),
  });
  await eventually(() => {
    if (!pools.ready()) throw new Error("informers not synced");
  });
  return pools;
}

/** The SandboxSnapshot controller, as the CLI composes it (docker copies when `docker` is given). */
export async function startSnapshots(opts: {
  namespace: string;
  user?: string;
  defaultBackend?: "pod" | "docker";
  docker?: { client: Docker; owner: string; image?: string };
}): Promise<RunningSnapshotController> {
  const kubeConfig = loadKubeConfig({
    kubeconfig: userKubeconfigPath(opts.user ?? "operator-2"),
    qps: 100,
    burst: 200,
  });
  const snapshots = await startSnapshotController({
    kubeConfig,
    namespaces: [opts.namespace],
    defaultBackend: opts.defaultBackend ?? "pod",
    ...(opts.docker
      ? {
          docker: {
            client: opts.docker.client,
            owner: opts.docker.owner,
            image: opts.docker.image ?? OPERATOR_IMAGE,
          },
        }
      : {}),
    concurrency: 4,
    registry: new Registry(),
    log: createLogger({ level: process.env.TEST_LOG_LEVEL ?? "silent" }),
  });
  await eventually(() => {
    if (!snapshots.ready()) throw new Error("informers not synced");
  });
  return snapshots;
}
