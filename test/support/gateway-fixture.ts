// A Gateway in a process of its own, for tests of its server behaviour over
// real sockets (slow clients, connection bounds, memory) where the test's own
// sockets must not count in the gateway's memory. The Sandbox is fixed
// ("ns/box": port 8000 private, 8001 public, both served by a workload in this
// process); the informer-backed directory and the backends are covered by
// test/docker/gateway*.test.ts.
//
//   node --import tsx test/support/gateway-fixture.ts '<json FixtureConfig>'
// prints one JSON line: {port, tokens, control}; GET http://127.0.0.1:<control>/
// answers {connections, rss} (the gateway's open connections, this process's RSS).
import { mkdtempSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { Auth } from "../../src/gateway/auth.js";
import type { Directory, SandboxObject } from "../../src/gateway/directory.js";
import { generateKeyFiles, KeyStore, SIGNING_KEY_FILE } from "../../src/gateway/keys.js";
import type { ListenerLimits } from "../../src/gateway/listener.js";
import { gatewayMetrics } from "../../src/gateway/metrics.js";
import { Gateway, type GatewayLimits } from "../../src/gateway/server.js";
import { mintToken } from "../../src/gateway/tokens.js";
import { silentLogger } from "../../src/observability/logger.js";

export interface FixtureConfig {
  limits?: Partial<GatewayLimits>;
  listener?: Partial<ListenerLimits>;
  /** Scoped tokens (verbs connect, files, exec) to mint for ns/box. */
  tokens?: number;
}

/**
 * The workload, standing for both the sandbox's port and its agent: answers
 * the byte count of the body once it is all in, "/v1/exec" with its headers
 * first (a stream).
 */
const workload = http.createServer((req, res) => {
  let bytes = 0;
  if (req.url?.startsWith("/v1/exec")) res.writeHead(200).flushHeaders();
  req.on("data", (c: Buffer) => {
    bytes += c.length;
  });
  req.on("end", () => res.end(String(bytes)));
});

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? "{}") as FixtureConfig;
  await new Promise<void>((r) => workload.listen(0, "127.0.0.1", r));
  const workloadPort = (workload.address() as AddressInfo).port;
  const keysDir = mkdtempSync(join(tmpdir(), "gw-fixture-"));
  writeFileSync(join(keysDir, SIGNING_KEY_FILE), generateKeyFiles().privatePem);
  const keys = new KeyStore(keysDir);
  const sandbox = {
    metadata: { name: "box", namespace: "ns", uid: "u1" },
    spec: {
      ports: [
        { name: "http", port: 8000, visibility: "private" },
        { name: "web", port: 8001, visibility: "public" },
      ],
    },
  } as unknown as SandboxObject;
  const directory = {
    get: (ns: string, name: string) => (ns === "ns" && name === "box" ? sandbox : undefined),
    reach: () => ({
      port: () => ({ host: "127.0.0.1", port: workloadPort }),
      agent: async () => ({ host: "127.0.0.1", port: workloadPort, token: "agent" }),
      forget: () => {},
    }),
  } as unknown as Directory;
  const gateway = new Gateway({
    auth: new Auth({ kubeConfig: undefined as never, keys }),
    keys,
    directory,
    log: silentLogger(),
    metrics: gatewayMetrics(new Registry()),
    maxTokenTtlSeconds: 3600,
    ...(config.limits ? { limits: config.limits } : {}),
    ...(config.listener ? { listener: config.listener } : {}),
    ready: () => undefined,
  });
  const { port } = await gateway.listen(0, "127.0.0.1");
  const tokens = Array.from({ length: config.tokens ?? 1 }, (_, i) =>
    mintToken(keys.keys.signing!, {
      ns: "ns",
      name: "box",
      uid: "u1",
      verbs: ["connect", "files", "exec"],
      exp: Math.floor(Date.now() / 1000) + 3600,
      sub: `client-${i}`,
    }),
  );
  const control = http.createServer((_req, res) =>
    res.end(JSON.stringify({ connections: gateway.connections, rss: process.memoryUsage().rss })),
  );
  await new Promise<void>((r) => control.listen(0, "127.0.0.1", r));
  const controlPort = (control.address() as AddressInfo).port;
  process.stdout.write(`${JSON.stringify({ port, tokens, control: controlPort })}\n`);
}

void main();
