// Kubernetes client configuration for the operator: kubeconfig file, in-cluster,
// or the default loading rules, with a client-side rate limit on every request
// made through API clients created from it, over reused connections.
import { type ConnectionOptions, createSecureContext } from "node:tls";
import * as k8s from "@kubernetes/client-node";
import { Agent, type Dispatcher } from "undici";
import { TokenBucket } from "./token-bucket.js";

/**
 * client-node 2.0 builds a new undici Agent for every request, so every request
 * opened a new TLS connection: measured at scale (bench/scale), handshakes were
 * the controller's largest CPU cost, and the apiserver's too. One Agent per
 * cluster and user keeps connections alive, as client-node's own (https.Agent)
 * cache does for the same key. It is built once, not built per request and
 * then swapped (an Agent and its options per request showed in CPU profiles),
 * and its connections share one TLS context: handed the CA and client
 * certificate instead, Node parses them into a new context for every
 * connection the pool opens.
 */
export class ReusingKubeConfig extends k8s.KubeConfig {
  private readonly dispatchers = new Map<string, Dispatcher | undefined>();

  constructor() {
    super();
    // Private in client-node's typings, called by applySecurityAuthentication
    // for every request: the one place to hand out the shared Agent.
    const own = this as unknown as { createDispatcher: CreateDispatcher };
    const build = own.createDispatcher.bind(this);
    own.createDispatcher = (cluster, agentOptions) => {
      const key = JSON.stringify([cluster?.server, this.getCurrentUser()?.name]);
      if (!this.dispatchers.has(key)) {
        this.dispatchers.set(key, this.sharedDispatcher(cluster, agentOptions, build));
      }
      return this.dispatchers.get(key);
    };
  }

  private sharedDispatcher(
    cluster: k8s.Cluster | null,
    agentOptions: AgentOptions,
    build: CreateDispatcher,
  ): Dispatcher | undefined {
    const opts = this.createDispatcherOptions(cluster, agentOptions);
    if (opts.type !== "agent") return build(cluster, agentOptions); // proxies: as client-node builds them
    const { ca, cert, key, pfx, passphrase, ...connect } = opts.connect as ConnectionOptions;
    const secureContext = createSecureContext({ ca, cert, key, pfx, passphrase });
    // undici closes a connection idle for 4 s by default: between two bursts of
    // writes the pool lost its connections and paid the handshakes again (TLS
    // setup showed in the controller's profile). The apiserver keeps them longer.
    return new Agent({
      connect: { ...connect, secureContext },
      keepAliveTimeout: 60_000,
      keepAliveMaxTimeout: 600_000,
    });
  }
}

type AgentOptions = Parameters<k8s.KubeConfig["createDispatcherOptions"]>[1];
type CreateDispatcher = (
  cluster: k8s.Cluster | null,
  agentOptions: AgentOptions,
) => Dispatcher | undefined;

export interface ClientOptions {
  kubeconfig?: string;
  qps: number;
  burst: number;
}

/**
 * Every request — typed API clients, raw requests, watch starts — authenticates
 * through its KubeConfig, so that is the one place a limiter covers them all.
 * Leader election uses an unlimited copy (see unlimited()): a busy queue of
 * writes must never delay a lease renewal.
 */
class RateLimitedKubeConfig extends ReusingKubeConfig {
  constructor(private readonly bucket: TokenBucket) {
    super();
  }

  override async applySecurityAuthentication(
    context: Parameters<k8s.KubeConfig["applySecurityAuthentication"]>[0],
  ): Promise<void> {
    await this.bucket.take();
    return super.applySecurityAuthentication(context);
  }
}

export function loadKubeConfig(opts: ClientOptions): k8s.KubeConfig {
  const kc = new RateLimitedKubeConfig(new TokenBucket(opts.qps, opts.burst));
  if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) {
    throw new Error(
      "no Kubernetes cluster configured: pass --kubeconfig, set KUBECONFIG, or run in a cluster",
    );
  }
  return kc;
}

/** The same cluster and credentials, through connections that are kept alive and without a rate limit. */
export function reusingCopy(kc: k8s.KubeConfig): k8s.KubeConfig {
  const copy = new ReusingKubeConfig();
  copy.loadFromString(kc.exportConfig());
  return copy;
}

/** Leader election's client: lease renewals must not queue behind the rate-limited work. */
export const unlimited = reusingCopy;
