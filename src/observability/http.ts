// The operator's HTTP endpoints: /metrics (Prometheus), /healthz (the process
// is alive) and /readyz (every registered check passes: caches synced, backends
// reachable). Plain node:http: three routes need no framework.
import { createServer, type Server } from "node:http";
import type { Registry } from "prom-client";

export type ReadinessCheck = () => Promise<string | undefined> | string | undefined;

export interface ObservabilityServer {
  /** Register a readiness check; it returns undefined when ready, otherwise why not. */
  addReadinessCheck(name: string, check: ReadinessCheck): void;
  close(): Promise<void>;
  address(): { host: string; port: number };
}

export interface ObservabilityServerOptions {
  /**
   * Serve /healthz and /readyz only, answering "ok" or "not ready" without the
   * failing checks' reasons: for an address reachable from outside, where a
   * probe needs the status code and nothing else (the egress sidecar's).
   */
  probesOnly?: boolean;
}

export async function startObservabilityServer(
  listen: { host: string; port: number },
  registry: Registry,
  options: ObservabilityServerOptions = {},
): Promise<ObservabilityServer> {
  const checks = new Map<string, ReadinessCheck>();
  const server: Server = createServer(async (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    try {
      if (path === "/metrics" && !options.probesOnly) {
        res.writeHead(200, { "content-type": registry.contentType });
        res.end(await registry.metrics());
      } else if (path === "/healthz" || path === "/livez") {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end("ok\n");
      } else if (path === "/readyz") {
        const failures: string[] = [];
        for (const [name, check] of checks) {
          const problem = await check();
          if (problem) failures.push(`${name}: ${problem}`);
        }
        res.writeHead(failures.length ? 503 : 200, { "content-type": "text/plain" });
        const details = options.probesOnly ? ["not ready"] : failures;
        res.end(failures.length ? `${details.join("\n")}\n` : "ok\n");
      } else {
        res.writeHead(404).end();
      }
    } catch (err) {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(`${err instanceof Error ? err.message : err}\n`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  return {
    addReadinessCheck: (name, check) => void checks.set(name, check),
    close: () => new Promise((resolve) => server.close(() => resolve())),
    address: () => {
      const a = server.address();
      return typeof a === "object" && a ? { host: a.address, port: a.port } : listen;
    },
  };
}
