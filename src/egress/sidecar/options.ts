// Options of `sandbox-operator egress` (the sidecar) and their defaults.
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { EGRESS_PORTS } from "../contract.js";

export interface SidecarPorts {
  /** DNS proxy (UDP and TCP); the lockdown redirects port 53 here. */
  dns: number;
  /** Transparent listener for redirected port-80 traffic. */
  http: number;
  /** Transparent listener for redirected port-443 traffic. */
  tls: number;
  /** Explicit proxy (HTTP_PROXY / HTTPS_PROXY). */
  proxy: number;
}

/** Defaults: the egress contract (src/egress/contract.ts). */
export const DEFAULT_SIDECAR_PORTS: SidecarPorts = {
  dns: EGRESS_PORTS.dns,
  http: EGRESS_PORTS.http,
  tls: EGRESS_PORTS.tls,
  proxy: EGRESS_PORTS.proxy,
};
/**
 * The probe endpoint listens on every address (the kubelet probes the Pod's
 * IP), so it serves only what a probe needs: /healthz and /readyz, "ok" or
 * "not ready". Metrics and the reasons a check fails stay on loopback.
 */
export const DEFAULT_HEALTH_LISTEN = { host: "0.0.0.0", port: EGRESS_PORTS.health };
export const DEFAULT_METRICS_LISTEN = { host: "127.0.0.1", port: EGRESS_PORTS.metrics };

export interface EgressSidecarOptions {
  /** Identifies the sandbox on every log line (e.g. "namespace/name"). */
  sandboxId: string;
  /** The `network.egress` policy as a YAML/JSON file, followed for changes. */
  policyPath?: string;
  /** The policy inline (the raw `network.egress` object), when there is no file. */
  policy?: unknown;
  /** Upstream resolver, "host" or "host:port"; default: first nameserver of /etc/resolv.conf. */
  upstreamDns?: string;
  /**
   * Address the DNS proxy and proxies listen on. Loopback by default: the
   * network namespace is shared with the workload only, and anything wider would
   * offer an open proxy to the rest of the network.
   */
  listenHost?: string;
  /** Listening ports; 0 picks a free one (tests). */
  ports?: Partial<SidecarPorts>;
  /** The probe endpoint (/healthz, /readyz without details); false disables. */
  health?: { host: string; port: number } | false;
  /** /metrics, /healthz and /readyz with the failing checks' reasons; false disables. */
  metrics?: { host: string; port: number } | false;
  /** Ports redirected traffic was meant for (the redirect hides them): 80 and 443. */
  destinationPorts?: { http: number; tls: number };
  /** Switch to this UID (and GID) after binding, if started as root. */
  uid?: number;
  gid?: number;
  /** Override the reserved ranges (CIDRs) refused unless a rule allows them. */
  reservedRanges?: readonly string[];
  /** Period of the policy file's stat fallback. */
  pollIntervalMs?: number;
  connectTimeoutMs?: number;
  /** Forward AAAA queries (default false: IPv6 egress is closed). */
  forwardAAAA?: boolean;
  logger?: Logger;
  registry?: Registry;
}
