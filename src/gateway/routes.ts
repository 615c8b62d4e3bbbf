// Which request is which: a pure function from method, path and Host to a
// route, table-tested in routes.test.ts. Everything the gateway forwards to an
// agent is on an allow-list of the agent's routes; anything else is refused
// here, before authentication does any work.
import { Verb } from "./verbs.js";

/** Kubernetes names: a namespace is a DNS label, a Sandbox name a DNS-1035 label (src/api/sandbox.ts). */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export const API_PREFIX = "/v1/namespaces/";
export const PORT_PATH_PREFIX = "/sandboxes/";

export interface SandboxTarget {
  namespace: string;
  name: string;
}

export type Route =
  | { kind: "openapi" }
  | { kind: "health" }
  /** The Sandbox resource (status, ports), for clients without a kubeconfig. */
  | ({ kind: "sandbox"; verb: typeof Verb.get } & SandboxTarget)
  /** Mint a scoped token for this sandbox. */
  | ({ kind: "mint"; verb: typeof Verb.mint } & SandboxTarget)
  | ({ kind: "logs"; verb: typeof Verb.logs } & SandboxTarget)
  /** Forwarded to the agent at agentPath (query included). */
  | ({
      kind: "agent";
      verb: typeof Verb.exec | typeof Verb.files | typeof Verb.get;
      agentPath: string;
      /** The exec stream over a WebSocket instead of a full-duplex HTTP body. */
      websocket: boolean;
    } & SandboxTarget)
  /** To a declared port of the sandbox; path is what the workload sees (query included). */
  | ({
      kind: "port";
      verb: typeof Verb.connect;
      port: number;
      path: string;
      prefix: string;
    } & SandboxTarget)
  | { kind: "error"; status: 400 | 404 | 405; message: string };

function notFound(message = "no such route"): Route {
  return { kind: "error", status: 404, message };
}

function target(ns: string, name: string): SandboxTarget | undefined {
  if (!DNS_LABEL.test(ns) || !DNS_LABEL.test(name)) return undefined;
  return { namespace: ns, name };
}

/**
 * Host routing: "{port}-{name}--{namespace}.{domain}". The last "--" splits
 * name from namespace (a namespace cannot be told apart otherwise; one with
 * "--" in it is reachable by path routing only).
 */
export function parsePortHost(
  host: string | undefined,
  domain: string | undefined,
): (SandboxTarget & { port: number }) | undefined {
  if (!host || !domain) return undefined;
  const bare = host.replace(/:\d+$/, "").toLowerCase();
  const suffix = `.${domain.toLowerCase()}`;
  if (!bare.endsWith(suffix)) return undefined;
  const label = bare.slice(0, -suffix.length);
  const m = /^(\d{1,5})-(.+)--([a-z0-9-]+)$/.exec(label);
  if (!m) return undefined;
  const port = Number(m[1]);
  const t = target(m[3]!, m[2]!);
  if (!t || port < 1 || port > 65535) return undefined;
  return { ...t, port };
}

const AGENT_ROUTES: {
  re: RegExp;
  verb: typeof Verb.exec | typeof Verb.files | typeof Verb.get;
  methods: string[];
}[] = [
  { re: /^exec$/, verb: Verb.exec, methods: ["POST", "GET"] },
  {
    re: /^processes(\/[^/]+(\/(wait|output|stdin|signal|resize))?)?$/,
    verb: Verb.exec,
    methods: ["GET", "POST", "DELETE"],
  },
  {
    re: /^files\/(content|stat|list|mkdir|move|remove|archive)$/,
    verb: Verb.files,
    methods: ["GET", "PUT", "POST"],
  },
  { re: /^version$/, verb: Verb.get, methods: ["GET"] },
];

export function route(
  method: string,
  rawUrl: string,
  host: string | undefined,
  options: { domain?: string; websocket?: boolean } = {},
): Route {
  const q = rawUrl.indexOf("?");
  const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
  const query = q < 0 ? "" : rawUrl.slice(q);

  const byHost = parsePortHost(host, options.domain);
  if (byHost) return { kind: "port", verb: Verb.connect, ...byHost, path: rawUrl, prefix: "" };

  // Encoded separators and dot segments would let a path mean two things.
  if (/%2f|%5c|\/\.\.?(\/|$)|\/\//i.test(path))
    return { kind: "error", status: 400, message: "path with encoded separators or dot segments" };

  if (path === "/openapi.json") return method === "GET" ? { kind: "openapi" } : notAllowed();
  if (path === "/healthz" || path === "/readyz") return { kind: "health" };

  if (path.startsWith(PORT_PATH_PREFIX)) {
    const m = /^\/sandboxes\/([^/]+)\/([^/]+)\/ports\/(\d{1,5})(\/.*)?$/.exec(path);
    const t = m && target(m[1]!, m[2]!);
    const port = m ? Number(m[3]) : 0;
    if (!m || !t || port < 1 || port > 65535)
      return notFound("expected /sandboxes/{namespace}/{name}/ports/{port}/...");
    const prefix = `/sandboxes/${t.namespace}/${t.name}/ports/${port}`;
    return { kind: "port", verb: Verb.connect, ...t, port, path: `${m[4] ?? "/"}${query}`, prefix };
  }

  if (!path.startsWith(API_PREFIX)) return notFound();
  const m = /^\/v1\/namespaces\/([^/]+)\/sandboxes\/([^/]+)(?:\/(.*))?$/.exec(path);
  const t = m && target(m[1]!, m[2]!);
  if (!m || !t) return notFound("expected /v1/namespaces/{namespace}/sandboxes/{name}/...");
  const rest = m[3] ?? "";
  if (rest === "")
    return method === "GET" ? { kind: "sandbox", verb: Verb.get, ...t } : notAllowed();
  if (rest === "tokens")
    return method === "POST" ? { kind: "mint", verb: Verb.mint, ...t } : notAllowed();
  if (rest === "logs")
    return method === "GET" ? { kind: "logs", verb: Verb.logs, ...t } : notAllowed();
  for (const r of AGENT_ROUTES) {
    if (!r.re.test(rest)) continue;
    if (!r.methods.includes(method)) return notAllowed();
    const websocket = rest === "exec" && method === "GET";
    if (websocket && !options.websocket)
      return {
        kind: "error",
        status: 400,
        message:
          "GET exec is the WebSocket form: send Upgrade: websocket (or POST the frame stream)",
      };
    return { kind: "agent", verb: r.verb, ...t, agentPath: `/v1/${rest}${query}`, websocket };
  }
  return notFound();
}

function notAllowed(): Route {
  return { kind: "error", status: 405, message: "method not allowed on this route" };
}
