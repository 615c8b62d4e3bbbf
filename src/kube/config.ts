// Kubernetes client configuration for the operator: kubeconfig file, in-cluster,
// or the default loading rules, with a client-side rate limit on every request
// made through API clients created from it, over reused connections.
import * as k8s from "@kubernetes/client-node";
import { TokenBucket } from "./token-bucket.js";

/**
 * client-node 2.0 builds a new undici Agent for every request, so every request
 * opened a new TLS connection: measured at scale (bench/scale), handshakes were
 * the controller's largest CPU cost, and the apiserver's too. One Agent per
 * cluster and user keeps connections alive, as client-node's own (https.Agent)
 * cache does for the same key.
 */
class ReusingKubeConfig extends k8s.KubeConfig {
  private readonly dispatchers = new Map<string, ReturnType<k8s.RequestContext["getDispatcher"]>>();

  override async applySecurityAuthentication(
    context: Parameters<k8s.KubeConfig["applySecurityAuthentication"]>[0],
  ): Promise<void> {
    await super.applySecurityAuthentication(context);
    const fresh = context.getDispatcher();
    if (!fresh) return;
    const key = JSON.stringify([this.getCurrentCluster()?.server, this.getCurrentUser()?.name]);
    const reused = this.dispatchers.get(key);
    if (reused) context.setDispatcher(reused);
    else this.dispatchers.set(key, fresh);
  }
}

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

/** The same cluster and credentials without the rate limit (for lease renewals). */
export function unlimited(kc: k8s.KubeConfig): k8s.KubeConfig {
  const copy = new ReusingKubeConfig();
  copy.loadFromString(kc.exportConfig());
  return copy;
}
