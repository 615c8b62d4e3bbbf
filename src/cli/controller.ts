// `sandbox-operator controller`: flags -> running controller, until SIGTERM/SIGINT.

import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { collectDefaultMetrics, Registry } from "prom-client";
import { AgentKeyError, readAgentKey } from "../backends/agent.js";
import { podLiveEgress } from "../claim/warm.js";
import { loadKubeConfig } from "../kube/config.js";
import { startObservabilityServer } from "../observability/http.js";
import { createLogger } from "../observability/logger.js";
import { parseServiceRef, readServiceEndpoint } from "../policy-server/service-endpoint.js";
import { startPoolControllers } from "../pool/start.js";
import { type SandboxControllerOptions, startSandboxController } from "../sandbox/controller.js";
import { startSnapshotController } from "../snapshot/start.js";
import {
  CONTROLLER_USAGE,
  dockerPolicyDir,
  enabledBackends,
  FlagError,
  listenAddress,
  parseControllerFlags,
  policyEndpoint,
} from "./controller-flags.js";
import { usageError } from "./usage.js";

export async function runController(argv: string[]): Promise<number> {
  let flags: ReturnType<typeof parseControllerFlags>;
  try {
    flags = parseControllerFlags(argv);
  } catch (err) {
    if (err instanceof FlagError) return usageError(err.message, CONTROLLER_USAGE);
    throw err;
  }

  const log = createLogger({ level: flags["log-level"] });
  const registry = new Registry();
  // process_resident_memory_bytes, nodejs_heap_size_used_bytes, event-loop lag:
  // what tells an operator's memory and CPU at scale apart from its logic.
  collectDefaultMetrics({ register: registry });
  const kubeConfig = loadKubeConfig({
    kubeconfig: flags.kubeconfig,
    qps: flags["kube-api-qps"],
    burst: flags["kube-api-burst"],
  });

  const servers = [];
  const metricsAddr = listenAddress(flags["metrics-bind-address"]);
  const healthAddr = listenAddress(flags["health-probe-bind-address"]);
  const metricsServer = metricsAddr && (await startObservabilityServer(metricsAddr, registry));
  if (metricsServer) servers.push(metricsServer);
  const healthServer =
    healthAddr &&
    (metricsAddr && healthAddr.port === metricsAddr.port && metricsServer
      ? metricsServer
      : await startObservabilityServer(healthAddr, registry));
  if (healthServer && healthServer !== metricsServer) servers.push(healthServer);

  const backends = enabledBackends(flags);
  let docker: SandboxControllerOptions["docker"];
  if (backends.has("docker")) {
    // Loaded only when enabled: dockerode and what it pulls in (ssh2, gRPC,
    // protobufs) are a third of the bundle, ~MiBs of RSS a pod-only controller
    // would carry for nothing.
    const { defaultUpstreamDns } = await import("../backends/docker/resolv-conf.js");
    const { dockerClient } = await import("../backends/docker/index.js");
    const { defaultAgentBinary } = await import("../backends/docker/agent.js");
    // Every docker workload gets the agent copied in before it starts: without the
    // binary no sandbox could start, so say so now rather than leave each one without status.
    const agent = defaultAgentBinary();
    if (!agent || !existsSync(agent)) {
      return usageError(
        `the docker backend needs the sandbox agent (${agent ?? "dist/agent/sandbox-agent"}): build it with \`make agent\` or set SANDBOX_AGENT_BINARY`,
        CONTROLLER_USAGE,
      );
    }
    const upstreamDns = flags["docker-dns"] ?? defaultUpstreamDns();
    if (!upstreamDns) {
      return usageError(
        "--docker-dns: no non-loopback nameserver in /etc/resolv.conf; name the resolver docker sandboxes should use",
        CONTROLLER_USAGE,
      );
    }
    const local = !flags["docker-host"] || flags["docker-host"].startsWith("unix://");
    docker = {
      client: dockerClient(flags["docker-host"]),
      settings: {
        owner: flags["docker-owner"],
        upstreamDns,
        publishAddress: flags["docker-publish-address"],
        allowedHostPaths: flags["docker-allowed-host-paths"],
        // Symlinks are resolved where the file system is the Docker host's own.
        hostPathsLocal: local,
        policyDir: dockerPolicyDir(
          flags["docker-policy-dir"],
          local,
          process.getuid?.() === 0,
          flags["docker-owner"],
        ),
      },
    };
  }

  const policyListen = listenAddress(flags["policy-bind-address"]);
  if ((flags["policy-endpoint"] || flags["policy-service"]) && !policyListen)
    return usageError(
      "--policy-bind-address: cannot be 0 with --policy-endpoint or --policy-service",
      CONTROLLER_USAGE,
    );
  let endpoint: NonNullable<SandboxControllerOptions["policyChannel"]>["endpoint"] | undefined;
  if (flags["policy-endpoint"]) endpoint = policyEndpoint(flags["policy-endpoint"]);
  else if (flags["policy-service"]) {
    try {
      endpoint = await readServiceEndpoint(kubeConfig, parseServiceRef(flags["policy-service"])!);
    } catch (err) {
      log.error({ err }, "the policy Service gives no endpoint");
      return 1;
    }
    log.info({ endpoint }, "policy endpoint read from its Service");
  }
  const policyChannel: SandboxControllerOptions["policyChannel"] =
    endpoint && policyListen
      ? {
          listen: policyListen,
          endpoint,
          tls: {
            cert: readFileSync(flags["policy-tls-cert"]!, "utf8"),
            key: readFileSync(flags["policy-tls-key"]!, "utf8"),
            ca: readFileSync(flags["policy-ca"]!, "utf8"),
          },
          peer: flags["policy-peer-namespace"]
            ? {
                namespaceSelector: {
                  matchLabels: { "kubernetes.io/metadata.name": flags["policy-peer-namespace"] },
                },
                podSelector: {
                  matchLabels: Object.fromEntries(
                    flags["policy-peer-labels"]!.split(",").map((kv) => kv.split("=", 2)),
                  ),
                },
              }
            : undefined,
        }
      : undefined;
  let gateway: SandboxControllerOptions["gateway"];
  if (flags["gateway-namespace"] && flags["agent-key-file"]) {
    try {
      gateway = {
        namespace: flags["gateway-namespace"],
        agentKey: readAgentKey(flags["agent-key-file"]),
      };
    } catch (err) {
      if (err instanceof AgentKeyError)
        return usageError(`--agent-key-file: ${err.message}`, CONTROLLER_USAGE);
      throw err;
    }
  }

  const controller = await startSandboxController({
    policyChannel,
    kubeConfig,
    namespaces: flags.namespaces,
    defaultBackend: flags["default-backend"],
    egressImage: flags["egress-image"],
    ...(gateway ? { gateway } : {}),
    docker,
    concurrency: flags.concurrency,
    stallTimeoutSeconds: flags["stall-timeout"],
    leaderElection: flags["leader-elect"]
      ? {
          namespace: flags["leader-election-namespace"],
          name: flags["leader-election-id"],
          // Unique per process, readable in `kubectl get lease`.
          identity: `${process.env.POD_NAME ?? hostname()}_${randomBytes(4).toString("hex")}`,
          shards: flags.shards,
        }
      : undefined,
    registry,
    log,
  });
  // Warm pools and claims: controllers of their own, on Leases of their own.
  const pools = await startPoolControllers({
    kubeConfig,
    namespaces: flags.namespaces,
    defaultBackend: flags["default-backend"],
    liveEgress: { pod: podLiveEgress(!!policyChannel) },
    concurrency: flags.concurrency,
    sandboxes: controller.allSandboxes,
    // A claim's Ready goes out beside its sandbox's (when this process leads both).
    sandboxStatusWrites: controller.sandboxStatusWrites,
    leaderElection: flags["leader-elect"]
      ? {
          namespace: flags["leader-election-namespace"],
          name: flags["leader-election-id"],
          identity: `${process.env.POD_NAME ?? hostname()}_${randomBytes(4).toString("hex")}`,
        }
      : undefined,
    registry,
    log,
  });
  // SandboxSnapshots: a controller of its own, on a Lease of its own.
  const snapshots = await startSnapshotController({
    kubeConfig,
    namespaces: flags.namespaces,
    defaultBackend: flags["default-backend"],
    ...(docker
      ? {
          docker: {
            client: docker.client,
            owner: flags["docker-owner"],
            image: flags["egress-image"],
          },
        }
      : {}),
    concurrency: flags.concurrency,
    leaderElection: flags["leader-elect"]
      ? {
          namespace: flags["leader-election-namespace"],
          name: flags["leader-election-id"],
          identity: `${process.env.POD_NAME ?? hostname()}_${randomBytes(4).toString("hex")}`,
        }
      : undefined,
    registry,
    log,
  });
  healthServer?.addReadinessCheck("informers", () =>
    controller.ready() && pools.ready() && snapshots.ready() ? undefined : "caches not synced",
  );
  // After the first sync too: a watch that is down (apiserver unreachable) means a stale cache.
  healthServer?.addReadinessCheck("watches", () => {
    const problems = controller.watchProblems();
    return problems.length ? problems.join("; ") : undefined;
  });
  if (docker) {
    healthServer?.addReadinessCheck("docker", () => controller.dockerUnavailable());
  }
  log.info({ flags, backends: [...backends] }, "controller started");

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  log.info({ signal }, "shutting down: draining work and releasing the lease");
  await Promise.all([controller.stop(), pools.stop(), snapshots.stop()]);
  await Promise.all(servers.map((s) => s.close()));
  log.flush();
  return 0;
}
