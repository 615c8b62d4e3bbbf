// `sandbox-operator gateway`: the authenticated entry to sandboxes' data plane
// and ports (src/gateway/), until SIGTERM/SIGINT. `gateway keygen DIR` writes
// a fresh signing key for its key Secret.
import { createPublicKey } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { collectDefaultMetrics, Registry } from "prom-client";
import { z } from "zod";
import { AgentKeyError, readAgentKey } from "../backends/agent.js";
import { generateKeyFiles, SIGNING_KEY_FILE } from "../gateway/keys.js";
import { loadKubeConfig } from "../kube/config.js";
import { startObservabilityServer } from "../observability/http.js";
import { createLogger } from "../observability/logger.js";
import { usageError } from "./usage.js";

export const GATEWAY_USAGE = `Usage: sandbox-operator gateway [flags]
       sandbox-operator gateway keygen DIR

Serves the sandboxes' data plane (exec, files, processes, logs) under
/v1/namespaces/{ns}/sandboxes/{name}/..., their declared ports by path
(/sandboxes/{ns}/{name}/ports/{port}/...) and by host, and /openapi.json.
Every call needs a Kubernetes bearer token allowed the verb on sandboxes by
RBAC, or a token scoped to the sandbox minted by the gateway.

Flags:
  --kubeconfig PATH                 kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)
  --listen HOST:PORT                the gateway's address (default: 0.0.0.0:8443)
  --tls-cert PATH --tls-key PATH    serve HTTPS with this certificate (a wildcard one for --domain)
  --domain DOMAIN                   host routing: {port}-{name}--{namespace}.DOMAIN
  --keys-dir DIR                    the key Secret's files: signing.key (Ed25519), *.pub (old keys
                                    still verifying) (default: /etc/sandbox-gateway/keys)
  --namespaces NS[,NS...]           namespaces served (default: all)
  --docker-host URL                 reach docker-backend sandboxes through this Docker Engine
                                    (default: none; the docker backend is not served)
  --docker-route bridge|published   reach docker sandboxes at the sidecar's address on the sandbox
                                    network (bridge: the gateway runs on the Docker host) or at
                                    their published ports (default: bridge for a unix:// host,
                                    else published)
  --agent-key-file PATH             the key the operator derives pod-backend agent credentials from
                                    (its --agent-key-file); without it, pod-backend agent routes answer 503
  --max-token-ttl SECONDS           longest lifetime of a minted token (default: 86400)
  --rate RPS --burst N              per-credential request rate (default: 100, 200)
  --sandbox-rate RPS                per-sandbox request rate (default: 500; burst twice that)
  --max-concurrent N                requests in flight per credential (default: 64)
  --max-concurrent-per-sandbox N    requests in flight per sandbox (default: 256)
  --max-upload-bytes N              largest streamed body (default: 1073741824)
  --headers-timeout SECONDS         a connection's first bytes, TLS handshake and each request's
                                    headers must arrive within this long, else 408 and closed (default: 15)
  --body-idle-timeout SECONDS       a request body that sends nothing for this long is cut off with 408
                                    (exec streams exempt: their body is stdin) (default: 60)
  --request-timeout SECONDS         the longest a request body may take to arrive in full, however
                                    steadily it trickles; exec streams exempt; 0: no bound (default: 3600)
  --keep-alive-timeout SECONDS      an idle keep-alive connection is closed after this long (default: 5)
  --max-connections N               connections at once; past it new ones are closed (default: 4096)
  --resume-timeout SECONDS          a call to a sandbox suspended for idleness resumes it and waits
                                    this long for it to serve, then 503 + Retry-After (default: 60;
                                    0: never resume, a suspended sandbox answers 503)
  --metrics-bind-address HOST:PORT  /metrics, /healthz, /readyz (default: 0.0.0.0:9090)
  --log-level LEVEL                 trace|debug|info|warn|error (default: info)
`;

const address = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^:]*):\d{1,5}$/, "must be HOST:PORT");
const positiveInt = z.coerce.number().int().positive();

const FlagsSchema = z.object({
  kubeconfig: z.string().min(1).optional(),
  listen: address.default("0.0.0.0:8443"),
  "tls-cert": z.string().optional(),
  "tls-key": z.string().optional(),
  domain: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, "must be a DNS name")
    .optional(),
  "keys-dir": z.string().default("/etc/sandbox-gateway/keys"),
  namespaces: z.string().optional(),
  "docker-host": z.string().optional(),
  "docker-route": z.enum(["bridge", "published"]).optional(),
  "agent-key-file": z.string().min(1).optional(),
  "max-token-ttl": positiveInt.max(86_400 * 7).default(86_400),
  rate: positiveInt.default(100),
  burst: positiveInt.default(200),
  "sandbox-rate": positiveInt.default(500),
  "max-concurrent": positiveInt.default(64),
  "max-concurrent-per-sandbox": positiveInt.default(256),
  "max-upload-bytes": positiveInt.default(1 << 30),
  "headers-timeout": positiveInt.max(3600).default(15),
  "body-idle-timeout": positiveInt.max(86_400).default(60),
  "request-timeout": z.coerce
    .number()
    .int()
    .min(0)
    .max(86_400 * 7)
    .default(3600),
  "keep-alive-timeout": positiveInt.max(3600).default(5),
  "max-connections": positiveInt.default(4096),
  "resume-timeout": z.coerce.number().int().min(0).max(3600).default(60),
  "metrics-bind-address": address.default("0.0.0.0:9090"),
  "log-level": z.enum(["trace", "debug", "info", "warn", "error"]).default("info"),
});

function hostPort(v: string): { host: string; port: number } {
  const i = v.lastIndexOf(":");
  return { host: v.slice(0, i).replace(/^\[|\]$/g, "") || "0.0.0.0", port: Number(v.slice(i + 1)) };
}

export function keygen(dir: string | undefined): number {
  if (!dir) return usageError("keygen needs a directory", GATEWAY_USAGE);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const current = join(dir, SIGNING_KEY_FILE);
  const { privatePem } = generateKeyFiles();
  if (existsSync(current)) {
    // Rotation: the old key keeps verifying the tokens it signed.
    const oldPub = createPublicKey(readFileSync(current))
      .export({ type: "spki", format: "pem" })
      .toString();
    writeFileSync(
      join(dir, `retired-${new Date().toISOString().replace(/[:.]/g, "")}.pub`),
      oldPub,
    );
  }
  writeFileSync(`${current}.new`, privatePem, { mode: 0o600 });
  renameSync(`${current}.new`, current);
  process.stdout.write(`wrote ${current}\n`);
  return 0;
}

export type GatewayFlags = z.infer<typeof FlagsSchema>;

/** Flags -> validated values, or a message naming the bad flag. */
export function parseGatewayFlags(argv: string[]): GatewayFlags | string {
  let values: Record<string, unknown>;
  try {
    values = parseArgs({
      args: argv,
      options: Object.fromEntries(
        Object.keys(FlagsSchema.shape).map((k) => [k, { type: "string" as const }]),
      ),
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    return (err as Error).message;
  }
  const parsed = FlagsSchema.safeParse(values);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    return `--${i.path.join(".")}: ${i.message}`;
  }
  if (!!parsed.data["tls-cert"] !== !!parsed.data["tls-key"])
    return "--tls-cert and --tls-key go together";
  return parsed.data;
}

export async function runGateway(argv: string[]): Promise<number> {
  if (argv[0] === "keygen") return keygen(argv[1]);
  const f = parseGatewayFlags(argv);
  if (typeof f === "string") return usageError(f, GATEWAY_USAGE);
  // The audit line of every call, written in batches (a write per line cost a
  // tenth of a proxied request's CPU); at most 200 ms late.
  const log = createLogger({ level: f["log-level"], batch: { flushMs: 200 } });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const kubeConfig = loadKubeConfig({
    ...(f.kubeconfig ? { kubeconfig: f.kubeconfig } : {}),
    qps: 200,
    burst: 400,
  });
  let docker: import("dockerode") | undefined;
  if (f["docker-host"]) {
    const { default: Docker } = await import("dockerode");
    const h = f["docker-host"];
    docker = h.startsWith("unix://")
      ? new Docker({ socketPath: h.slice(7) })
      : new Docker({ host: new URL(h).hostname, port: Number(new URL(h).port) });
  }
  let agentKey: Buffer | undefined;
  if (f["agent-key-file"]) {
    try {
      agentKey = readAgentKey(f["agent-key-file"]);
    } catch (err) {
      if (err instanceof AgentKeyError)
        return usageError(`--agent-key-file: ${err.message}`, GATEWAY_USAGE);
      throw err;
    }
  }
  const { startGateway } = await import("../gateway/index.js");
  const running = await startGateway({
    kubeConfig,
    log,
    registry,
    keysDir: f["keys-dir"],
    listen: hostPort(f.listen),
    ...(f["tls-cert"] && f["tls-key"]
      ? { tls: { cert: readFileSync(f["tls-cert"]), key: readFileSync(f["tls-key"]) } }
      : {}),
    ...(docker
      ? {
          docker,
          // A local daemon's bridge is this host's; a remote one's is not.
          dockerRoute:
            f["docker-route"] ?? (f["docker-host"]!.startsWith("unix://") ? "bridge" : "published"),
        }
      : {}),
    ...(agentKey ? { agentKey } : {}),
    ...(f.domain ? { domain: f.domain } : {}),
    ...(f.namespaces
      ? {
          namespaces: f.namespaces
            .split(",")
            .map((s) => s.trim())
            .filter(Boolean),
        }
      : {}),
    maxTokenTtlSeconds: f["max-token-ttl"],
    resumeTimeoutMs: f["resume-timeout"] * 1000,
    limits: {
      perCredential: { rps: f.rate, burst: f.burst },
      perSandbox: { rps: f["sandbox-rate"], burst: f["sandbox-rate"] * 2 },
      concurrentPerCredential: f["max-concurrent"],
      concurrentPerSandbox: f["max-concurrent-per-sandbox"],
      maxUploadBytes: f["max-upload-bytes"],
      bodyIdleTimeoutMs: f["body-idle-timeout"] * 1000,
      requestTimeoutMs: f["request-timeout"] * 1000,
    },
    listener: {
      headersTimeoutMs: f["headers-timeout"] * 1000,
      keepAliveTimeoutMs: f["keep-alive-timeout"] * 1000,
      maxConnections: f["max-connections"],
    },
  });
  const metrics = await startObservabilityServer(hostPort(f["metrics-bind-address"]), registry);
  // Asked in process: over HTTPS a probe of the gateway's own URL would have
  // to trust its certificate (issued for the wildcard domain, not 0.0.0.0).
  metrics.addReadinessCheck("gateway", async () => running.ready());
  log.info({ url: running.url }, "gateway serving");
  const signal = await new Promise<string>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  log.info({ signal }, "gateway stopping");
  await running.stop();
  await metrics.close();
  return 0;
}
