// Composition of the gateway: the Sandbox informer, the backends it reaches,
// authentication, the key store, and the server. Used by the CLI command and
// by tests (which run it in-process against the real control plane).
import * as k8s from "@kubernetes/client-node";
import type Docker from "dockerode";
import type { Registry } from "prom-client";
import { GROUP, SANDBOX_PLURAL, VERSION } from "../api/group.js";
import type { Logger } from "../observability/logger.js";
import { Auth } from "./auth.js";
import {
  Directory,
  DockerReach,
  type DockerRoute,
  PodReach,
  sandboxInformer,
} from "./directory.js";
import { KeyStore } from "./keys.js";
import type { ListenerLimits } from "./listener.js";
import { gatewayMetrics } from "./metrics.js";
import { Gateway, type GatewayLimits } from "./server.js";
import { MAX_TOKEN_TTL_SECONDS } from "./tokens.js";
import { DEFAULT_RESUME_TIMEOUT_MS, Waker } from "./waker.js";

export interface StartGatewayOptions {
  kubeConfig: k8s.KubeConfig;
  log: Logger;
  registry: Registry;
  keysDir: string;
  listen: { host: string; port: number };
  /** Serve HTTPS with this certificate (e.g. the wildcard one of host routing). */
  tls?: { cert: Buffer; key: Buffer };
  docker?: Docker;
  /** How docker-backend sandboxes are reached (default: published). */
  dockerRoute?: DockerRoute;
  /** The key pod-backend agents' credentials derive from (the operator's --agent-key-file). */
  agentKey?: Buffer;
  domain?: string;
  namespaces?: string[];
  limits?: Partial<GatewayLimits>;
  /** Slow and idle clients, connections at once (listener.ts). */
  listener?: Partial<ListenerLimits>;
  maxTokenTtlSeconds?: number;
  authCacheTtlMs?: number;
  /** Bound on resuming an idle-suspended sandbox for a call (default 60 s); 0 disables resume on use. */
  resumeTimeoutMs?: number;
}

export interface RunningGateway {
  gateway: Gateway;
  address: { host: string; port: number };
  url: string;
  keys: KeyStore;
  /** Undefined when ready (the Sandbox cache synced and healthy), else why not. */
  ready(): string | undefined;
  stop(): Promise<void>;
}

export async function startGateway(o: StartGatewayOptions): Promise<RunningGateway> {
  const log = o.log.child({ component: "gateway" });
  const keys = new KeyStore(o.keysDir, (err) =>
    log.error({ err }, "cannot reload the token keys; keeping the last good set"),
  );
  keys.start();
  const informer = sandboxInformer(o.kubeConfig, log, o.namespaces);
  informer.start();
  const directory = new Directory(informer, {
    pod: new PodReach(o.agentKey, o.kubeConfig),
    ...(o.docker ? { docker: new DockerReach(o.docker, o.dockerRoute) } : {}),
  });
  const resumeTimeoutMs = o.resumeTimeoutMs ?? DEFAULT_RESUME_TIMEOUT_MS;
  const sandboxes = o.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  const waker =
    resumeTimeoutMs > 0
      ? new Waker({
          directory,
          timeoutMs: resumeTimeoutMs,
          registry: o.registry,
          log,
          patch: async (s, body) => {
            await sandboxes.patchNamespacedCustomObject(
              {
                group: GROUP,
                version: VERSION,
                plural: SANDBOX_PLURAL,
                namespace: s.metadata.namespace!,
                name: s.metadata.name!,
                body,
              },
              k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
            );
          },
        })
      : undefined;
  const ready = () =>
    informer.hasSynced() ? informer.problems()[0] : "the Sandbox cache has not synced";
  const gateway = new Gateway({
    ...(waker ? { waker } : {}),
    auth: new Auth({
      kubeConfig: o.kubeConfig,
      keys,
      ...(o.authCacheTtlMs !== undefined ? { cacheTtlMs: o.authCacheTtlMs } : {}),
    }),
    keys,
    directory,
    log,
    metrics: gatewayMetrics(o.registry),
    ...(o.domain ? { domain: o.domain } : {}),
    ...(o.limits ? { limits: o.limits } : {}),
    ...(o.listener ? { listener: o.listener } : {}),
    ...(o.tls ? { tls: o.tls } : {}),
    maxTokenTtlSeconds: o.maxTokenTtlSeconds ?? MAX_TOKEN_TTL_SECONDS,
    ready,
  });
  await informer.synced;
  const address = await gateway.listen(o.listen.port, o.listen.host);
  const host = address.host.includes(":") ? `[${address.host}]` : address.host;
  return {
    gateway,
    address,
    url: `${o.tls ? "https" : "http"}://${host}:${address.port}`,
    keys,
    ready,
    stop: async () => {
      keys.stop();
      await gateway.close();
      waker?.close();
      await informer.stop();
    },
  };
}
