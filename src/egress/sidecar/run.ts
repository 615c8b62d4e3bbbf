// `sandbox-operator egress`: the sidecar. Starts the DNS proxy, the explicit
// proxy, the two transparent listeners and the health endpoint, all judging
// against one policy that follows its file.
import { readFileSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo, Server as NetServer, Socket } from "node:net";
import type { Logger } from "pino";
import { Registry } from "prom-client";
import { startObservabilityServer } from "../../observability/http.js";
import { createLogger } from "../../observability/logger.js";
import { type CompiledPolicy, parsePolicy, reservedRanges } from "../policy/index.js";
import type { DialContext } from "./connect/dial.js";
import { upstreamNameResolver } from "./connect/name-resolver.js";
import { decisionRecorder } from "./decisions.js";
import { startDnsProxy } from "./dns/dns-proxy.js";
import { parseUpstream } from "./dns/upstream.js";
import { explicitProxyServer } from "./http/explicit-proxy.js";
import { transparentHttpServer } from "./http/transparent-http.js";
import {
  DEFAULT_HEALTH_LISTEN,
  DEFAULT_METRICS_LISTEN,
  DEFAULT_SIDECAR_PORTS,
  type EgressSidecarOptions,
  type SidecarPorts,
} from "./options.js";
import { type PolicySource, staticPolicy, watchPolicyFile } from "./policy-file.js";
import { dropPrivileges } from "./privileges.js";
import { transparentTlsServer } from "./tls/transparent-tls.js";

export interface EgressSidecar {
  /** The ports actually bound (matters when 0 was asked for). */
  ports: SidecarPorts & { health?: number; metrics?: number };
  registry: Registry;
  policy(): CompiledPolicy;
  close(): Promise<void>;
}

export async function runEgressSidecar(opts: EgressSidecarOptions): Promise<EgressSidecar> {
  const logger = (opts.logger ?? createLogger()).child({ component: "egress-sidecar" });
  const registry = opts.registry ?? new Registry();
  const host = opts.listenHost ?? "127.0.0.1";
  const wanted = { ...DEFAULT_SIDECAR_PORTS, ...opts.ports };
  const destinationPorts = opts.destinationPorts ?? { http: 80, tls: 443 };
  const upstreamText = opts.upstreamDns ?? resolvConfNameserver();

  const source = await policySource(opts, logger);
  const decisions = decisionRecorder(opts.sandboxId, logger, registry);
  const upstream = parseUpstream(upstreamText);
  const ctx: DialContext = {
    policy: () => source.current(),
    reserved: reservedRanges(opts.reservedRanges),
    resolver: upstreamNameResolver({ upstream: upstreamText }),
    decisions,
    connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
  };

  const closers: (() => Promise<void>)[] = [async () => source.close()];
  try {
    const dns = await startDnsProxy({
      host,
      port: wanted.dns,
      upstream,
      policy: ctx.policy,
      decisions,
      forwardAAAA: opts.forwardAAAA ?? false,
    });
    closers.push(dns.close);
    const proxy = await listen(explicitProxyServer(ctx), host, wanted.proxy, closers);
    const http = await listen(
      transparentHttpServer(ctx, destinationPorts.http),
      host,
      wanted.http,
      closers,
    );
    const tls = await listen(
      transparentTlsServer(ctx, destinationPorts.tls),
      host,
      wanted.tls,
      closers,
    );
    // Two endpoints: the probe one may be reachable from outside the sandbox
    // (the kubelet probes the Pod's IP), so it tells a status code and nothing
    // else; metrics and the reasons stay on loopback.
    let health: number | undefined;
    if (opts.health !== false) {
      const server = await startObservabilityServer(
        opts.health ?? DEFAULT_HEALTH_LISTEN,
        registry,
        { probesOnly: true },
      );
      server.addReadinessCheck("policy", () => source.problem());
      closers.push(server.close);
      health = server.address().port;
    }
    let metrics: number | undefined;
    if (opts.metrics !== false) {
      const server = await startObservabilityServer(
        opts.metrics ?? DEFAULT_METRICS_LISTEN,
        registry,
      );
      server.addReadinessCheck("policy", () => source.problem());
      closers.push(server.close);
      metrics = server.address().port;
    }
    // Everything is bound (a port below 1024 needs root for that); from here on
    // the sidecar is the one UID the firewall lets out.
    if (opts.uid !== undefined) dropPrivileges(opts.uid, opts.gid);
    const ports = {
      dns: dns.port,
      proxy,
      http,
      tls,
      ...(health !== undefined ? { health } : {}),
      ...(metrics !== undefined ? { metrics } : {}),
    };
    logger.info(
      { sandbox: opts.sandboxId, ports, upstreamDns: upstreamText, uid: process.getuid?.() },
      "egress sidecar ready",
    );
    return {
      ports,
      registry,
      policy: ctx.policy,
      close: async () => {
        await Promise.allSettled(closers.reverse().map((c) => c()));
      },
    };
  } catch (err) {
    await Promise.allSettled(closers.reverse().map((c) => c()));
    throw err;
  }
}

async function policySource(opts: EgressSidecarOptions, logger: Logger): Promise<PolicySource> {
  if (opts.policyPath) {
    return watchPolicyFile(opts.policyPath, { logger, pollIntervalMs: opts.pollIntervalMs });
  }
  if (opts.policy !== undefined) return staticPolicy(parsePolicy(opts.policy));
  throw new Error("the egress sidecar needs a policy: policyPath or policy");
}

async function listen(
  server: Server | NetServer,
  host: string,
  port: number,
  closers: (() => Promise<void>)[],
): Promise<number> {
  // Tunnels and spliced connections can live for hours; closing the sidecar
  // ends them rather than waiting for them.
  const open = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    open.add(socket);
    socket.once("close", () => open.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of open) socket.destroy();
      }),
  );
  return (server.address() as AddressInfo).port;
}

/** The first nameserver of /etc/resolv.conf, read before the workload can change anything. */
function resolvConfNameserver(): string {
  const text = readFileSync("/etc/resolv.conf", "utf8");
  const m = /^\s*nameserver\s+(\S+)/m.exec(text);
  if (!m) throw new Error("no upstreamDns given and no nameserver in /etc/resolv.conf");
  return m[1]!.includes(":") ? `[${m[1]}]:53` : m[1]!;
}
