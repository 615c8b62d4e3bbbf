// Gateway transport: the data plane through `sandbox-operator gateway`, for
// clients that hold a gateway URL and a token (a scoped token, or a
// Kubernetes bearer token) instead of a kubeconfig. Chosen from the
// environment, so code written against the SDK runs unchanged:
//   SANDBOX_GATEWAY_URL=https://sandboxes.example.com
//   SANDBOX_GATEWAY_TOKEN=sgw1....        (or SANDBOX_GATEWAY_TOKEN_FILE=/path)
//   SANDBOX_NAMESPACE=team-a              (default namespace for get())
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { PassThrough } from "node:stream";
import { AgentClient } from "./client.js";
import type { DataPlane } from "./connect.js";
import type { LogOptions, LogStreams } from "./docker.js";
import { agentErrorOf, SandboxError, SandboxNotFoundError } from "./errors.js";
import { FrameDecoder } from "./frames.js";
import { ErrorBodySchema, FrameType } from "./protocol.js";

export const GATEWAY_URL_ENV = "SANDBOX_GATEWAY_URL";
export const GATEWAY_TOKEN_ENV = "SANDBOX_GATEWAY_TOKEN";
export const GATEWAY_TOKEN_FILE_ENV = "SANDBOX_GATEWAY_TOKEN_FILE";
export const NAMESPACE_ENV = "SANDBOX_NAMESPACE";

export interface GatewayConfig {
  url: string;
  token: string;
}

/** The gateway configuration from the environment, or undefined when none is set. */
export function gatewayFromEnv(env: NodeJS.ProcessEnv = process.env): GatewayConfig | undefined {
  const url = env[GATEWAY_URL_ENV];
  if (!url) return undefined;
  const file = env[GATEWAY_TOKEN_FILE_ENV];
  const token = file ? readFileSync(file, "utf8").trim() : env[GATEWAY_TOKEN_ENV];
  if (!token)
    throw new SandboxError(
      `${GATEWAY_URL_ENV} is set but no token: set ${GATEWAY_TOKEN_ENV} or ${GATEWAY_TOKEN_FILE_ENV}`,
    );
  return { url: url.replace(/\/+$/, ""), token };
}

export const sandboxPath = (ns: string, name: string) =>
  `/v1/namespaces/${encodeURIComponent(ns)}/sandboxes/${encodeURIComponent(name)}`;

/** A data plane whose ports are URLs on the gateway rather than host:port pairs. */
export interface GatewayDataPlane extends DataPlane {
  portUrl(port: number, path: string): { url: string; headers: Record<string, string> };
}

async function request(
  g: GatewayConfig,
  method: string,
  path: string,
): Promise<http.IncomingMessage> {
  const url = new URL(g.url + path);
  const mod = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      url,
      { method, headers: { authorization: `Bearer ${g.token}` } },
      (res) => {
        if ((res.statusCode ?? 500) < 300) return resolve(res);
        let text = "";
        res.on("data", (c) => {
          text += c;
        });
        res.on("end", () => {
          const body = ErrorBodySchema.safeParse(safeJson(text));
          const err = body.success ? body.data.error : undefined;
          if (res.statusCode === 404 && err?.code === "SANDBOX_NOT_FOUND")
            return reject(new SandboxNotFoundError(err.message));
          reject(agentErrorOf(res.statusCode ?? 500, err, `gateway answered ${res.statusCode}`));
        });
      },
    );
    req.on("error", reject);
    req.end();
  });
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** GET a sandbox resource through the gateway (verb get). */
export async function gatewayGetSandbox(
  g: GatewayConfig,
  ns: string,
  name: string,
): Promise<unknown> {
  const res = await request(g, "GET", sandboxPath(ns, name));
  let text = "";
  for await (const c of res) text += c;
  return JSON.parse(text);
}

export function gatewayDataPlane(g: GatewayConfig, ns: string, name: string): GatewayDataPlane {
  const url = new URL(g.url);
  const tls = url.protocol === "https:";
  const agent = new AgentClient({
    host: url.hostname.replace(/^\[|\]$/g, ""),
    port: Number(url.port || (tls ? 443 : 80)),
    token: g.token,
    basePath: `${url.pathname.replace(/\/+$/, "")}${sandboxPath(ns, name)}`,
    tls,
  });
  return {
    agent: async () => agent,
    logs: async (o: LogOptions = {}): Promise<LogStreams> => {
      const q = new URLSearchParams();
      if (o.follow) q.set("follow", "true");
      if (o.tail !== undefined) q.set("tail", String(o.tail));
      if (o.since !== undefined) q.set("since", String(o.since));
      const res = await request(g, "GET", `${sandboxPath(ns, name)}/logs${q.size ? `?${q}` : ""}`);
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      const dec = new FrameDecoder();
      res.on("data", (c: Buffer) => {
        for (const f of dec.push(c))
          (f.type === FrameType.stderr ? stderr : stdout).write(Buffer.from(f.payload));
      });
      res.on("end", () => {
        stdout.end();
        stderr.end();
      });
      res.on("error", (e) => stdout.destroy(e));
      return { stdout, stderr, close: () => res.destroy() };
    },
    port: () => {
      throw new SandboxError("through the gateway a port is a URL: use fetch(port, path)");
    },
    portUrl: (port, path) => ({
      url: `${g.url}/sandboxes/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/ports/${port}${path.startsWith("/") ? path : `/${path}`}`,
      // The gateway's own header: the request's Authorization stays the workload's.
      headers: { "x-sandbox-token": g.token },
    }),
    close: () => agent.close(),
  };
}
