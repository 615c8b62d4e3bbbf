// The gateway's HTTP server: one authenticated entry to every sandbox's data
// plane and declared ports. Stateless (any replica answers any request: the
// sandboxes come from an informer cache, scoped tokens verify with public
// keys), streaming everywhere (bodies are piped with back-pressure, so memory
// per request is bounded by socket buffers, never by body size), and fail
// closed: a request is refused unless every check passes.
//
// Order of checks, so a refusal reveals nothing it should not: route (400/404/
// 405, before any work) -> credential (401) -> authorization of the verb on
// the named sandbox (403) -> rate and concurrency (429) -> the sandbox exists
// (404), is the incarnation the token names (403) and is not being deleted
// (409) -> it is reachable (503).
import { randomBytes } from "node:crypto";
import http from "node:http";
import type net from "node:net";
import type { Duplex } from "node:stream";
import { Transform } from "node:stream";
import type { Agent } from "undici";
import { createWebSocketStream, WebSocketServer } from "ws";
import { z } from "zod";
import { encodeFrame } from "../dataplane/frames.js";
import { FrameType } from "../dataplane/protocol.js";
import { asleep } from "../idle/wake.js";
import type { Logger } from "../observability/logger.js";
import { type AuditRecord, auditWriter } from "./audit.js";
import type { Auth, Principal } from "./auth.js";
import { type Decision, mintable, sandboxAdmits, scopedTokenAllows } from "./decide.js";
import type { Directory, SandboxObject } from "./directory.js";
import { GatewayError } from "./errors.js";
import type { KeyStore } from "./keys.js";
import { ConcurrencyLimiter, type RateLimit, RateLimiter } from "./limits.js";
import { Listener, type ListenerLimits } from "./listener.js";
import type { GatewayMetrics } from "./metrics.js";
import { MintRequestSchema } from "./mint.js";
import { openApiDocument } from "./openapi.js";
import { type Route, route } from "./routes.js";
import { looksScoped, mintToken } from "./tokens.js";
import { originOf, proxy, upstreamAgent } from "./upstream.js";
import { Verb } from "./verbs.js";
import type { Waker } from "./waker.js";

export interface GatewayLimits {
  perCredential: RateLimit;
  perSandbox: RateLimit;
  /** Requests and streams in flight at once. */
  concurrentPerCredential: number;
  concurrentPerSandbox: number;
  /** JSON request bodies (mint, process control, file operations). */
  maxJsonBytes: number;
  /** Streamed request bodies (file and archive uploads, exec stdin). */
  maxUploadBytes: number;
  /**
   * A request body that sends nothing for this long while the gateway waits
   * for it (not while the sandbox is slow to read it) is cut off: 408.
   * Exec streams are exempt: their body is the process's stdin, rightly
   * quiet for as long as the process runs (they are bounded by the in-flight
   * caps and the exec's own timeout).
   */
  bodyIdleTimeoutMs: number;
  /**
   * The longest a request body may take to arrive in full, however steadily
   * it trickles: past it, 408. Exec streams exempt, as above. 0: no bound.
   */
  requestTimeoutMs: number;
}

export const DEFAULT_LIMITS: GatewayLimits = {
  perCredential: { rps: 100, burst: 200 },
  perSandbox: { rps: 500, burst: 1000 },
  concurrentPerCredential: 64,
  concurrentPerSandbox: 256,
  maxJsonBytes: 1 << 20,
  maxUploadBytes: 1 << 30,
  bodyIdleTimeoutMs: 60_000,
  // A 1 GiB upload (maxUploadBytes) at 300 KB/s still fits.
  requestTimeoutMs: 3_600_000,
};

export interface GatewayOptions {
  auth: Auth;
  keys: KeyStore;
  directory: Directory;
  log: Logger;
  metrics: GatewayMetrics;
  /** Wildcard domain of host routing ("{port}-{name}--{ns}.{domain}"); absent: path routing only. */
  domain?: string;
  limits?: Partial<GatewayLimits>;
  /** Slow and idle clients, connections at once (listener.ts). */
  listener?: Partial<ListenerLimits>;
  maxTokenTtlSeconds: number;
  /** Serve HTTPS (the wildcard certificate of host routing) instead of HTTP. */
  tls?: { cert: Buffer; key: Buffer };
  /** Undefined when ready (the cache synced), else why not. */
  ready(): string | undefined;
  /** Resumes idle-suspended sandboxes for calls and reports port traffic (docs/idle.md). */
  waker?: Waker;
  /** How long a sandbox port may take to send its response headers (504 after); default UPSTREAM_HEADERS_TIMEOUT_MS. */
  upstreamHeadersTimeoutMs?: number;
}

/** Call IDs: unique per process start, cheap per call. */
const CALL_ID_PREFIX = randomBytes(4).toString("hex");
let callSeq = 0;

/** One call's facts, for its audit line and metrics. */
interface Call {
  id: string;
  verb: string;
  started: number;
  who?: string;
  namespace?: string;
  name?: string;
  port?: number;
  status?: number;
  result?: string;
  bytesIn: number;
  bytesOut: number;
  release: (() => void)[];
}

interface Admitted {
  principal: Principal;
  sandbox: SandboxObject;
}

interface PortAdmitted {
  sandbox: SandboxObject;
  /** The client's Authorization was the gateway's credential: not forwarded. */
  consumedAuthorization: boolean;
}

/** An admitted port route: the port must be declared in the sandbox's spec. */
function declaredPort(
  sandbox: SandboxObject,
  port: number,
  consumedAuthorization: boolean,
): PortAdmitted {
  if (!sandbox.spec.ports?.some((p) => p.port === port))
    throw new GatewayError(
      404,
      "PORT_NOT_DECLARED",
      `port ${port} is not declared in the sandbox's spec.ports`,
    );
  return { sandbox, consumedAuthorization };
}

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "proxy-connection",
  // Node's server already answered "100 Continue" to the client; the
  // upstream gets the body without waiting (undici refuses the header).
  "expect",
]);
/** Headers the gateway consumes; never forwarded into a sandbox (untrusted) with a credential in them. */
const GATEWAY_TOKEN_HEADER = "x-sandbox-token";
/**
 * Browsers cannot send a bearer header when they follow a preview URL: a
 * scoped token in `?sandbox_token=` is exchanged once for this cookie
 * (HttpOnly, SameSite=Lax, path-scoped to the port route), which is never
 * forwarded into the sandbox.
 */
const GATEWAY_COOKIE = "sandbox_gateway_token";
const TOKEN_QUERY = "sandbox_token";

function cookieToken(cookie: string | undefined): string | undefined {
  if (!cookie?.includes(GATEWAY_COOKIE)) return undefined;
  for (const part of cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === GATEWAY_COOKIE) return v.join("=");
  }
  return undefined;
}

function fromDecision(d: Decision): void {
  if (!d.allow) throw new GatewayError(d.status, d.code, d.message);
}

/** Bounds of one request body: its size, and how long it may take to arrive. */
interface BodyBounds {
  maxBytes: number;
  /** 0: no idle bound (exec streams). */
  idleMs: number;
  /** 0: no overall bound. */
  totalMs: number;
}

/**
 * Counts bytes and fails past a limit (413), so a huge body is cut off while
 * it streams; fails a body that stalls or trickles past its time (408), so a
 * slow client does not hold a request (and its in-flight slot) forever.
 */
class Limit extends Transform {
  bytes = 0;
  private idle: NodeJS.Timeout | undefined;
  private total: NodeJS.Timeout | undefined;
  constructor(
    private readonly bounds: BodyBounds,
    private readonly onBytes: (n: number) => void,
  ) {
    super();
    if (bounds.totalMs > 0)
      this.total = setTimeout(
        () =>
          this.destroy(
            new GatewayError(
              408,
              "REQUEST_TIMEOUT",
              `the request body did not arrive within ${bounds.totalMs / 1000} s`,
            ),
          ),
        bounds.totalMs,
      ).unref();
    this.armIdle();
  }
  private armIdle(): void {
    if (this.bounds.idleMs <= 0) return;
    clearTimeout(this.idle);
    this.idle = setTimeout(() => {
      // Data waiting on the sandbox (back-pressure): the wait is not the client's.
      if (this.writableLength > 0 || this.readableLength >= this.readableHighWaterMark)
        return this.armIdle();
      this.destroy(
        new GatewayError(
          408,
          "REQUEST_TIMEOUT",
          `the request body sent nothing for ${this.bounds.idleMs / 1000} s`,
        ),
      );
    }, this.bounds.idleMs).unref();
  }
  override _transform(
    chunk: Buffer,
    _enc: BufferEncoding,
    cb: (err?: Error | null, data?: Buffer) => void,
  ) {
    this.bytes += chunk.length;
    this.onBytes(chunk.length);
    this.armIdle();
    if (this.bytes > this.bounds.maxBytes)
      cb(
        new GatewayError(413, "BODY_TOO_LARGE", `request body over ${this.bounds.maxBytes} bytes`),
      );
    else cb(null, chunk);
  }
  override _flush(cb: () => void) {
    this.stop();
    cb();
  }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void) {
    this.stop();
    cb(err);
  }
  private stop(): void {
    clearTimeout(this.idle);
    clearTimeout(this.total);
    this.idle = this.total = undefined;
  }
}

export class Gateway {
  readonly server: net.Server;
  private readonly listener: Listener;
  private readonly limits: GatewayLimits;
  private readonly rate: { credential: RateLimiter; sandbox: RateLimiter };
  private readonly concurrency: { credential: ConcurrencyLimiter; sandbox: ConcurrencyLimiter };
  private readonly upstream = new http.Agent({
    keepAlive: true,
    maxSockets: 4096,
    maxFreeSockets: 256,
  });
  private readonly wss = new WebSocketServer({
    noServer: true,
    maxPayload: 2 << 20,
    perMessageDeflate: false,
  });
  /** The port route's upstream leg (upstream.ts); agent calls stay on node:http (full-duplex exec bodies). */
  private readonly ports: Agent;
  private openapi: string | undefined;
  /** Writes a call's audit line. */
  private readonly audit: (r: AuditRecord) => void;
  /** route()'s options, built once. */
  private readonly routing: { domain?: string };

  constructor(private readonly o: GatewayOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...o.limits };
    this.audit = auditWriter(o.log);
    this.routing = o.domain ? { domain: o.domain } : {};
    this.ports = upstreamAgent(
      o.upstreamHeadersTimeoutMs ? { headersTimeoutMs: o.upstreamHeadersTimeoutMs } : {},
    );
    this.rate = {
      credential: new RateLimiter(this.limits.perCredential),
      sandbox: new RateLimiter(this.limits.perSandbox),
    };
    this.concurrency = {
      credential: new ConcurrencyLimiter(this.limits.concurrentPerCredential),
      sandbox: new ConcurrencyLimiter(this.limits.concurrentPerSandbox),
    };
    // HTTP/1.1 and HTTP/2 (TLS with ALPN, or h2c) into the same handlers.
    this.listener = new Listener({
      ...(o.tls ? { tls: o.tls } : {}),
      ...(o.listener ? { limits: o.listener } : {}),
      onRequest: (req, res) => void this.handle(req, res),
      onUpgrade: (req, socket, head) => void this.handleUpgrade(req, socket, head),
    });
    this.server = this.listener.server;
  }

  listen(port: number, host: string): Promise<{ host: string; port: number }> {
    return this.listener.listen(port, host);
  }

  /** Client connections open now. */
  get connections(): number {
    return this.listener.connections;
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    await this.listener.close();
    this.upstream.destroy();
    await this.ports.destroy();
  }

  // --- plain requests ------------------------------------------------------------

  /**
   * One request. Synchronous up to the port route's upstream request when
   * nothing has to be waited for (the common proxied call); the API routes
   * go on in serve().
   */
  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const r = route(req.method ?? "GET", req.url ?? "/", hostOf(req), this.routing);
    if (r.kind === "health") {
      const why = this.o.ready();
      res
        .writeHead(why ? 503 : 200, { "content-type": "text/plain" })
        .end(why ? "not ready\n" : "ok\n");
      return;
    }
    if (r.kind === "openapi") {
      this.openapi ??= JSON.stringify(openApiDocument(this.o.domain));
      res.writeHead(200, { "content-type": "application/json" }).end(this.openapi);
      return;
    }
    const call = this.begin(r);
    res.on("close", () => this.finish(call, req, res.statusCode));
    try {
      if (r.kind === "error")
        throw new GatewayError(
          r.status,
          r.status === 400 ? "BAD_REQUEST" : r.status === 404 ? "NO_ROUTE" : "METHOD_NOT_ALLOWED",
          r.message,
        );
      if (r.kind === "port") {
        this.port(req, res, r, call)?.catch((err) => this.refuse(res, call, err));
        return;
      }
    } catch (err) {
      this.refuse(res, call, err);
      return;
    }
    void this.serve(req, res, r, call);
  }

  /** An API route (everything but a port), once routed and begun. */
  private async serve(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    r: Exclude<Route, { kind: "health" | "openapi" | "error" | "port" }>,
    call: Call,
  ): Promise<void> {
    try {
      const { principal, sandbox } = await this.admit(
        req.headers.authorization,
        r,
        call,
        req.socket.remoteAddress,
      );
      switch (r.kind) {
        case "sandbox":
          return json(res, 200, sandboxSummary(sandbox));
        case "mint":
          return await this.mint(req, res, principal!, sandbox, call);
        case "logs":
          return await this.logs(req, res, sandbox, call);
        case "agent": {
          const live = await this.awake(sandbox, (s, reach) => reach.agent(s));
          const reach = this.o.directory.reach(live);
          const ep = await reach.agent(live);
          const upload =
            r.agentPath.startsWith("/v1/exec") ||
            /^\/v1\/files\/(content|archive)/.test(r.agentPath) ||
            /\/stdin/.test(r.agentPath);
          const headers = forwardHeaders(req.headers, { dropAuthorization: true });
          headers.authorization = `Bearer ${ep.token}`;
          return await this.forward(
            req,
            res,
            { host: ep.host, port: ep.port, path: r.agentPath, headers },
            call,
            this.bodyBounds(
              upload ? this.limits.maxUploadBytes : this.limits.maxJsonBytes,
              r.agentPath.startsWith("/v1/exec"),
            ),
            () => reach.forget(live),
          );
        }
      }
    } catch (err) {
      this.refuse(res, call, err);
    }
  }

  private begin(r: Route): Call {
    const verb = "verb" in r ? r.verb : "none";
    this.o.metrics.started(verb);
    const call: Call = {
      id: `${CALL_ID_PREFIX}-${(++callSeq).toString(36)}`,
      verb,
      started: performance.now(),
      bytesIn: 0,
      bytesOut: 0,
      release: [],
    };
    if ("namespace" in r) {
      call.namespace = r.namespace;
      call.name = r.name;
    }
    if (r.kind === "port") call.port = r.port;
    return call;
  }

  /** One audit line and the metrics, once per call, when its response ends or breaks. */
  private finish(call: Call, req: http.IncomingMessage, status: number): void {
    for (const release of call.release) release();
    call.release.length = 0;
    call.status ??= status;
    call.result ??= call.status < 400 ? "ok" : `HTTP_${call.status}`;
    const ms = performance.now() - call.started;
    this.o.metrics.finishedCall({
      verb: call.verb,
      result: call.result,
      seconds: ms / 1000,
      bytesIn: call.bytesIn,
      bytesOut: call.bytesOut,
    });
    const url = req.url ?? "";
    const q = url.indexOf("?");
    this.audit({
      id: call.id,
      who: call.who ?? "anonymous",
      sandbox: call.namespace ? `${call.namespace}/${call.name}` : undefined,
      port: call.port,
      verb: call.verb,
      method: req.method,
      path: q < 0 ? url : url.slice(0, q),
      status: call.status,
      result: call.result,
      bytesIn: call.bytesIn,
      bytesOut: call.bytesOut,
      ms: Math.round(ms * 10) / 10,
      remote: req.socket.remoteAddress,
    });
  }

  private refuse(res: http.ServerResponse, call: Call, err: unknown): void {
    const e =
      err instanceof GatewayError
        ? err
        : new GatewayError(502, "UPSTREAM_ERROR", (err as Error).message ?? String(err));
    call.status = e.status;
    call.result = e.code;
    if (e.status >= 500 && !(err instanceof GatewayError))
      this.o.log.warn({ err, call: call.id }, "gateway call failed");
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const headers: Record<string, string> = { "content-type": "application/json" };
    // HTTP/1.1: the rest of an unread body must not be parsed as the next
    // request. HTTP/2 ends just this stream (and forbids the header).
    if (res.req.httpVersionMajor < 2) headers.connection = "close";
    if (e.status === 401) headers["www-authenticate"] = 'Bearer realm="sandbox-gateway"';
    if (e.status === 429) headers["retry-after"] = "1";
    if (e.retryAfterSeconds !== undefined) headers["retry-after"] = String(e.retryAfterSeconds);
    res
      .writeHead(e.status, headers)
      .end(JSON.stringify({ error: { code: e.code, message: e.message } }));
  }

  /**
   * Authenticates and authorizes a call on a sandbox, then applies limits
   * and looks the sandbox up. Throws GatewayError on any refusal (at once,
   * or as the promise's rejection). Answered without waiting when the
   * credential, and a Kubernetes identity's decision, are cached (the
   * common call: no promise, no await on the way); else asks first.
   */
  private admit(
    authorization: string | undefined,
    r: { verb: string; namespace: string; name: string },
    call: Call,
    remote?: string,
  ): Admitted | Promise<Admitted> {
    const principal = this.o.auth.cached(authorization);
    if (principal) {
      const allowed =
        principal.kind === "scoped" ||
        this.o.auth.cachedDecision(principal, r.namespace, r.name, r.verb);
      if (allowed !== undefined) return this.grant(principal, allowed, r, call);
    }
    return this.admitAsking(authorization, r, call, remote);
  }

  /** admit() when the apiserver (or a signature check) must be asked first. */
  private async admitAsking(
    authorization: string | undefined,
    r: { verb: string; namespace: string; name: string },
    call: Call,
    remote?: string,
  ): Promise<Admitted> {
    const principal = await this.o.auth.authenticate(authorization, remote);
    call.who = principal.who;
    const allowed =
      principal.kind === "scoped" ||
      (await this.o.auth.allowed(principal, r.namespace, r.name, r.verb));
    return this.grant(principal, allowed, r, call);
  }

  /** The rest of admit(), given who is calling and (for a Kubernetes identity) what RBAC said. */
  private grant(
    principal: Principal,
    rbacAllows: boolean,
    r: { verb: string; namespace: string; name: string },
    call: Call,
  ): Admitted {
    call.who = principal.who;
    const verb = r.verb as Verb;
    if (principal.kind === "scoped") {
      if (verb === Verb.mint)
        throw new GatewayError(403, "VERB_NOT_GRANTED", "a scoped token cannot mint tokens");
      fromDecision(scopedTokenAllows(principal.claims, r.namespace, r.name, verb));
    } else if (!rbacAllows) {
      throw new GatewayError(
        403,
        "RBAC_DENIED",
        `${principal.username} may not ${verb} sandboxes/${r.name} in ${r.namespace} (grant the verb on sandboxes.sandboxing.dev with a Role)`,
      );
    }
    this.limit(principal.key, `${r.namespace}/${r.name}`, call);
    const sandbox = this.o.directory.get(r.namespace, r.name);
    fromDecision(
      sandboxAdmits(
        sandbox && {
          uid: sandbox.metadata.uid ?? "",
          terminating: !!sandbox.metadata.deletionTimestamp,
        },
        principal.kind === "scoped" ? principal.claims.uid : undefined,
        r.namespace,
        r.name,
      ),
    );
    return { principal, sandbox: sandbox! };
  }

  /** The sandbox, resumed first if the operator suspended it for idleness and a waker is set. */
  private awake(
    sandbox: SandboxObject,
    target: Parameters<Waker["awake"]>[1],
  ): Promise<SandboxObject> {
    return this.o.waker ? this.o.waker.awake(sandbox, target) : Promise.resolve(sandbox);
  }

  private limit(credentialKey: string, sandboxKey: string, call: Call): void {
    if (!this.rate.credential.take(credentialKey))
      throw new GatewayError(429, "RATE_LIMITED", "too many requests for this credential");
    if (!this.rate.sandbox.take(sandboxKey))
      throw new GatewayError(429, "RATE_LIMITED", "too many requests for this sandbox");
    const a = this.concurrency.credential.acquire(credentialKey);
    if (!a)
      throw new GatewayError(
        429,
        "TOO_MANY_IN_FLIGHT",
        "too many requests in flight for this credential",
      );
    const b = this.concurrency.sandbox.acquire(sandboxKey);
    if (!b) {
      a();
      throw new GatewayError(
        429,
        "TOO_MANY_IN_FLIGHT",
        "too many requests in flight for this sandbox",
      );
    }
    call.release.push(a, b);
  }

  /** A body's bounds: exec streams (stdin, quiet while the process runs) have no time bounds. */
  private bodyBounds(maxBytes: number, execStream: boolean): BodyBounds {
    return execStream
      ? { maxBytes, idleMs: 0, totalMs: 0 }
      : {
          maxBytes,
          idleMs: this.limits.bodyIdleTimeoutMs,
          totalMs: this.limits.requestTimeoutMs,
        };
  }

  /** Pipes a request to host:port and the answer back, in bounded memory, cut off past its bounds. */
  private forward(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    to: { host: string; port: number; path: string; headers: http.OutgoingHttpHeaders },
    call: Call,
    bounds: BodyBounds,
    onConnectFailure?: () => void,
  ): Promise<void> {
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > bounds.maxBytes)
      throw new GatewayError(413, "BODY_TOO_LARGE", `request body over ${bounds.maxBytes} bytes`);
    return new Promise<void>((resolve) => {
      const up = http.request({
        agent: this.upstream,
        host: to.host,
        port: to.port,
        method: req.method,
        path: to.path,
        headers: to.headers,
      });
      const fail = (err: unknown) => {
        up.destroy();
        if (!res.headersSent && (err as { code?: string }).code === "ECONNREFUSED")
          onConnectFailure?.();
        this.refuse(
          res,
          call,
          err instanceof GatewayError
            ? err
            : new GatewayError(
                502,
                "UPSTREAM_ERROR",
                `the sandbox did not answer: ${(err as Error).message}`,
              ),
        );
        resolve();
      };
      up.setNoDelay(true);
      up.on("error", fail);
      up.on("response", (ur) => {
        res.writeHead(ur.statusCode ?? 502, responseHeaders(ur));
        // Streams (exec frames, logs: no length) reach the client as they come;
        // a response of known length goes out with its first bytes, in one
        // write instead of two (the CPU profile of bench/gateway/micro.ts).
        if (ur.headers["content-length"] === undefined) res.flushHeaders();
        // By hand rather than pipe(): one listener counts, forwards and
        // applies back-pressure (pipe() adds six listeners per response, and
        // counting needed a seventh; this is the hot path of port routing).
        ur.on("data", (c: Buffer) => {
          call.bytesOut += c.length;
          if (!res.write(c)) {
            ur.pause();
            res.once("drain", () => ur.resume());
          }
        });
        ur.on("end", () => {
          res.end();
          resolve();
        });
        ur.on("error", () => {
          res.destroy();
          resolve();
        });
      });
      // The client went away: so does the upstream request (the agent kills an exec's process group).
      res.on("close", () => {
        // writableEnded: HTTP/2's compatibility response has no writableFinished.
        if (!res.writableEnded) up.destroy();
      });
      // No body (a GET, say): no byte-counting stream to build for it.
      if (hasNoBody(req)) {
        req.resume();
        up.end();
        return;
      }
      const limit = new Limit(bounds, (n) => {
        call.bytesIn += n;
      });
      limit.on("error", fail);
      // Over, whichever way: the body's timers go with it.
      res.on("close", () => limit.destroy());
      req.pipe(limit).pipe(up);
    });
  }

  // --- ports -----------------------------------------------------------------

  /**
   * A port route's admission: public ports serve anyone; private ones need
   * connect. Without waiting when admit() can (see there).
   */
  private admitPort(
    headers: http.IncomingHttpHeaders,
    r: Extract<Route, { kind: "port" }>,
    call: Call,
    remote: string | undefined,
  ): PortAdmitted | Promise<PortAdmitted> {
    const found = this.o.directory.get(r.namespace, r.name);
    const decl = found?.spec.ports?.find((p) => p.port === r.port);
    if (found && decl?.visibility === "public" && !found.metadata.deletionTimestamp) {
      this.limit(`ip:${remote}`, `${r.namespace}/${r.name}`, call);
      return { sandbox: found, consumedAuthorization: false };
    }
    // The gateway's credential: its own header, else Authorization, else its cookie.
    const viaHeader = headers[GATEWAY_TOKEN_HEADER];
    const viaCookie = cookieToken(headers.cookie);
    const authorization =
      typeof viaHeader === "string"
        ? `Bearer ${viaHeader}`
        : (headers.authorization ?? (viaCookie ? `Bearer ${viaCookie}` : undefined));
    const consumedAuthorization =
      typeof viaHeader !== "string" && headers.authorization !== undefined;
    const admitted = this.admit(authorization, r, call, remote);
    return admitted instanceof Promise
      ? admitted.then((a) => declaredPort(a.sandbox, r.port, consumedAuthorization))
      : declaredPort(admitted.sandbox, r.port, consumedAuthorization);
  }

  /**
   * A port request: admitted, then proxied. The common call (credential
   * cached, sandbox awake) runs to the upstream request without a promise;
   * one is returned only when something had to be waited for.
   */
  private port(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    r: Extract<Route, { kind: "port" }>,
    call: Call,
  ): Promise<void> | undefined {
    const q = r.path.indexOf("?");
    // Parsed only when it may be there: most port requests carry no query.
    if (q >= 0 && r.path.includes(TOKEN_QUERY, q)) {
      const query = new URLSearchParams(r.path.slice(q + 1));
      const fromQuery = query.get(TOKEN_QUERY);
      if (fromQuery !== null) return this.exchangeForCookie(req, res, r, call, fromQuery, query);
    }
    const admitted = this.admitPort(req.headers, r, call, req.socket.remoteAddress);
    if (admitted instanceof Promise)
      return admitted.then((a) => this.portAdmitted(req, res, r, call, a));
    return this.portAdmitted(req, res, r, call, admitted);
  }

  private portAdmitted(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    r: Extract<Route, { kind: "port" }>,
    call: Call,
    admitted: PortAdmitted,
  ): Promise<void> | undefined {
    if (this.o.waker && asleep(admitted.sandbox))
      return this.awake(admitted.sandbox, async (s, reach) => reach.port(s, r.port)).then((s) =>
        this.proxyPort(req, res, r, call, s, admitted.consumedAuthorization),
      );
    this.proxyPort(req, res, r, call, admitted.sandbox, admitted.consumedAuthorization);
    return undefined;
  }

  /** Sends a port request upstream; failures answer the client through refuse() (proxy() throws nothing). */
  private proxyPort(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    r: Extract<Route, { kind: "port" }>,
    call: Call,
    sandbox: SandboxObject,
    consumedAuthorization: boolean,
  ): void {
    const to = this.o.directory.reach(sandbox).port(sandbox, r.port);
    const headers = forwardHeaders(req.headers, { dropAuthorization: consumedAuthorization });
    setForwarded(headers, req, r.prefix);
    const max = this.limits.maxUploadBytes;
    if (Number(req.headers["content-length"] ?? 0) > max)
      throw new GatewayError(413, "BODY_TOO_LARGE", `request body over ${max} bytes`);
    const waker = this.o.waker;
    let body: Limit | null = null;
    if (hasNoBody(req)) req.resume();
    else {
      const limit = new Limit(this.bodyBounds(max, false), (n) => {
        call.bytesIn += n;
        waker?.portTraffic(sandbox);
      });
      res.on("close", () => limit.destroy());
      req.pipe(limit);
      body = limit;
    }
    waker?.portTraffic(sandbox);
    const gateway = this;
    proxy(
      this.ports,
      res,
      {
        origin: originOf(to.host, to.port),
        method: req.method ?? "GET",
        path: r.path,
        headers,
        body,
      },
      {
        onBytesOut: waker
          ? (n) => {
              call.bytesOut += n;
              waker.portTraffic(sandbox);
            }
          : (n) => {
              call.bytesOut += n;
            },
        // A method, not an arrow bound to a name (see proxy()).
        refuse(e) {
          gateway.refuse(res, call, e);
        },
      },
    );
  }

  /** `?sandbox_token=<scoped token>` -> the same URL without it, and the token as a cookie. */
  private async exchangeForCookie(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    r: Extract<Route, { kind: "port" }>,
    call: Call,
    token: string,
    query: URLSearchParams,
  ): Promise<void> {
    if (req.method !== "GET" || !looksScoped(token))
      throw new GatewayError(400, "BAD_REQUEST", `${TOKEN_QUERY} takes a scoped token, on a GET`);
    const { principal } = await this.admit(`Bearer ${token}`, r, call, req.socket.remoteAddress);
    if (principal.kind !== "scoped")
      throw new GatewayError(400, "BAD_REQUEST", "not a scoped token");
    query.delete(TOKEN_QUERY);
    const q = r.path.indexOf("?");
    const path = q < 0 ? r.path : r.path.slice(0, q);
    const tls = (req.socket as { encrypted?: boolean }).encrypted === true;
    const maxAge = Math.max(0, principal.claims.exp - Math.floor(Date.now() / 1000));
    res
      .writeHead(303, {
        location: `${r.prefix}${path}${query.size ? `?${query}` : ""}`,
        "set-cookie": `${GATEWAY_COOKIE}=${token}; Path=${r.prefix || "/"}; Max-Age=${maxAge}; HttpOnly; SameSite=Lax${tls ? "; Secure" : ""}`,
        "cache-control": "no-store",
        "referrer-policy": "no-referrer",
      })
      .end();
  }

  // --- upgrades: exec over WebSocket, WebSocket (or any upgrade) to ports -------

  private async handleUpgrade(
    req: http.IncomingMessage,
    socket: Duplex,
    head: Buffer,
  ): Promise<void> {
    const r = route(req.method ?? "GET", req.url ?? "/", hostOf(req), {
      ...(this.o.domain ? { domain: this.o.domain } : {}),
      websocket: true,
    });
    const call = this.begin(r);
    let status = 101;
    socket.on("close", () => this.finish(call, req, status));
    socket.on("error", () => {});
    try {
      if (r.kind === "port") {
        const admitted = await this.admitPort(req.headers, r, call, req.socket.remoteAddress);
        const { consumedAuthorization } = admitted;
        const sandbox = await this.awake(admitted.sandbox, async (s, reach) =>
          reach.port(s, r.port),
        );
        const traffic = () => this.o.waker?.portTraffic(sandbox);
        const to = this.o.directory.reach(sandbox).port(sandbox, r.port);
        const headers = forwardHeaders(req.headers, { dropAuthorization: consumedAuthorization });
        setForwarded(headers, req, r.prefix);
        headers.connection = "Upgrade";
        headers.upgrade = req.headers.upgrade ?? "websocket";
        const up = http.request({
          host: to.host,
          port: to.port,
          method: req.method,
          path: r.path,
          headers,
        });
        up.on("upgrade", (ur, usock, uhead) => {
          const lines = [`HTTP/1.1 ${ur.statusCode} ${ur.statusMessage}`];
          for (let i = 0; i < ur.rawHeaders.length; i += 2)
            lines.push(`${ur.rawHeaders[i]}: ${ur.rawHeaders[i + 1]}`);
          socket.write(`${lines.join("\r\n")}\r\n\r\n`);
          if (uhead.length) socket.write(uhead);
          if (head.length) usock.write(head);
          traffic();
          usock.on("data", (c: Buffer) => {
            call.bytesOut += c.length;
            traffic();
          });
          socket.on("data", (c: Buffer) => {
            call.bytesIn += c.length;
            traffic();
          });
          usock.pipe(socket).on("error", () => usock.destroy());
          socket.pipe(usock).on("error", () => socket.destroy());
          usock.on("close", () => socket.destroy());
          socket.on("close", () => usock.destroy());
        });
        up.on("response", (ur) => {
          status = ur.statusCode ?? 502;
          const lines = [`HTTP/1.1 ${ur.statusCode} ${ur.statusMessage}`];
          for (let i = 0; i < ur.rawHeaders.length; i += 2)
            lines.push(`${ur.rawHeaders[i]}: ${ur.rawHeaders[i + 1]}`);
          socket.write(`${lines.join("\r\n")}\r\n\r\n`);
          ur.pipe(socket);
        });
        up.on("error", (e) =>
          upgradeRefusal(
            socket,
            call,
            new GatewayError(502, "UPSTREAM_ERROR", e.message),
            (s) => (status = s),
          ),
        );
        up.end();
        return;
      }
      if (r.kind !== "agent" || !r.websocket) {
        if (r.kind === "error") throw new GatewayError(r.status, "NO_ROUTE", r.message);
        throw new GatewayError(400, "BAD_REQUEST", "only exec and port routes take a WebSocket");
      }
      const admitted = await this.admit(
        req.headers.authorization ?? bearerFromProtocol(req.headers["sec-websocket-protocol"]),
        r,
        call,
        req.socket.remoteAddress,
      );
      const sandbox = await this.awake(admitted.sandbox, (s, reach) => reach.agent(s));
      const reach = this.o.directory.reach(sandbox);
      const ep = await reach.agent(sandbox);
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        const duplex = createWebSocketStream(ws);
        duplex.on("error", () => {});
        const up = http.request({
          agent: this.upstream,
          host: ep.host,
          port: ep.port,
          method: "POST",
          path: "/v1/exec",
          headers: {
            authorization: `Bearer ${ep.token}`,
            "content-type": "application/vnd.sandbox-agent.frames",
            "transfer-encoding": "chunked",
          },
        });
        up.setNoDelay(true);
        const limit = new Limit(this.bodyBounds(this.limits.maxUploadBytes, true), (n) => {
          call.bytesIn += n;
        });
        duplex.pipe(limit).pipe(up);
        const close = (code: number, why: string) => {
          if (ws.readyState === ws.OPEN) ws.close(code, why.slice(0, 120));
          up.destroy();
        };
        limit.on("error", (e) => close(1009, e.message));
        up.on("error", (e) => close(1011, e.message));
        up.on("response", (ur) => {
          if (ur.statusCode !== 200) {
            let text = "";
            ur.on("data", (c) => {
              text += c;
            });
            ur.on("end", () => close(4000 + (ur.statusCode ?? 500), text));
            return;
          }
          ur.on("data", (c: Buffer) => {
            call.bytesOut += c.length;
          });
          ur.pipe(duplex, { end: false });
          ur.on("end", () => close(1000, "exit"));
        });
        ws.on("close", () => up.destroy());
      });
    } catch (err) {
      upgradeRefusal(socket, call, err, (s) => (status = s));
    }
  }

  // --- gateway-served routes ---------------------------------------------------

  private async mint(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    principal: Principal,
    sandbox: SandboxObject,
    call: Call,
  ): Promise<void> {
    if (principal.kind !== "user")
      throw new GatewayError(403, "VERB_NOT_GRANTED", "a scoped token cannot mint tokens");
    const body = MintRequestSchema.safeParse(
      await readJson(req, this.bodyBounds(4096, false), call),
    );
    if (!body.success) throw new GatewayError(400, "BAD_REQUEST", z.prettifyError(body.error));
    fromDecision(mintable(body.data, this.o.maxTokenTtlSeconds));
    // Never more than the minter holds: each verb is checked for the minter.
    const ns = sandbox.metadata.namespace!;
    const name = sandbox.metadata.name!;
    for (const verb of body.data.verbs) {
      if (!(await this.o.auth.allowed(principal, ns, name, verb)))
        throw new GatewayError(
          403,
          "RBAC_DENIED",
          `${principal.username} may not ${verb} sandboxes/${name} in ${ns}, so cannot grant it`,
        );
    }
    const signing = this.o.keys.keys.signing;
    if (!signing)
      throw new GatewayError(
        503,
        "NO_SIGNING_KEY",
        "this gateway has no signing key (signing.key in its key Secret)",
      );
    const exp = Math.floor(Date.now() / 1000) + body.data.ttlSeconds;
    const token = mintToken(signing, {
      ns,
      name,
      uid: sandbox.metadata.uid!,
      verbs: body.data.verbs,
      exp,
      sub: principal.username,
    });
    json(res, 201, {
      token,
      expiresAt: new Date(exp * 1000).toISOString(),
      verbs: body.data.verbs,
      sandbox: { namespace: ns, name, uid: sandbox.metadata.uid! },
    });
  }

  /** The runtime's log as the exec stream's frames (stdout 0x11, stderr 0x12), with follow, since, tail. */
  private async logs(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    sandbox: SandboxObject,
    call: Call,
  ): Promise<void> {
    const q = new URL(req.url ?? "/", "http://x").searchParams;
    const tail = q.get("tail");
    const since = q.get("since");
    const streams = await this.o.directory.reach(sandbox).logs(sandbox, {
      follow: q.get("follow") === "true",
      ...(tail ? { tail: Number(tail) } : {}),
      ...(since ? { since: /^\d+$/.test(since) ? Number(since) : since } : {}),
    });
    res.writeHead(200, { "content-type": "application/vnd.sandbox-agent.frames" });
    res.flushHeaders();
    let open = 2;
    const pipe = (s: NodeJS.ReadableStream & { pause(): void; resume(): void }, type: number) => {
      s.on("data", (c: Buffer) => {
        call.bytesOut += c.length;
        if (!res.write(encodeFrame(type, c))) {
          s.pause();
          res.once("drain", () => s.resume());
        }
      });
      s.on("end", () => {
        if (--open === 0) res.end();
      });
    };
    pipe(streams.stdout, FrameType.stdout);
    pipe(streams.stderr, FrameType.stderr);
    res.on("close", () => streams.close());
  }
}

function upgradeRefusal(
  socket: Duplex,
  call: Call,
  err: unknown,
  setStatus: (s: number) => void,
): void {
  const e =
    err instanceof GatewayError
      ? err
      : new GatewayError(502, "UPSTREAM_ERROR", (err as Error).message);
  call.result = e.code;
  setStatus(e.status);
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code: e.code, message: e.message } });
  socket.end(
    `HTTP/1.1 ${e.status} ${http.STATUS_CODES[e.status] ?? ""}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** Browsers cannot set Authorization on a WebSocket: "bearer.<token>" as a subprotocol does. */
function bearerFromProtocol(protocols: string | undefined): string | undefined {
  const p = protocols
    ?.split(",")
    .map((s) => s.trim())
    .find((s) => s.startsWith("bearer."));
  return p ? `Bearer ${p.slice("bearer.".length)}` : undefined;
}

/** A request that declares no body: HTTP/1 without length or chunking, HTTP/2 with its stream ended. */
function hasNoBody(req: http.IncomingMessage): boolean {
  if (req.httpVersionMajor >= 2)
    return (
      req.readableEnded ||
      (req as { stream?: { endAfterHeaders?: boolean } }).stream?.endAfterHeaders === true
    );
  return (
    req.headers["content-length"] === undefined && req.headers["transfer-encoding"] === undefined
  );
}

/** The request's authority: HTTP/1's Host, HTTP/2's :authority. */
function hostOf(req: http.IncomingMessage): string | undefined {
  return req.headers.host ?? (req.headers[":authority"] as string | undefined);
}

function forwardHeaders(
  h: http.IncomingHttpHeaders,
  o: { dropAuthorization: boolean },
): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  // Headers the client named in Connection are hop-by-hop too (the usual values name none).
  const conn = h.connection;
  const connectionTokens =
    conn && conn !== "keep-alive" && conn !== "close"
      ? new Set(
          conn
            .toLowerCase()
            .split(",")
            .map((s) => s.trim()),
        )
      : undefined;
  for (const k in h) {
    const v = h[k];
    if (
      v === undefined ||
      k.charCodeAt(0) === 58 || // ":": HTTP/2 pseudo-headers: the upstream request is HTTP/1.1
      HOP_BY_HOP.has(k) ||
      connectionTokens?.has(k) ||
      k === GATEWAY_TOKEN_HEADER
    )
      continue;
    if (k === "authorization" && o.dropAuthorization) continue;
    if (k === "cookie") {
      // The gateway's cookie never reaches the sandbox; the workload's own cookies do.
      const kept = String(v)
        .split(";")
        .map((c) => c.trim())
        .filter((c) => c && !c.startsWith(`${GATEWAY_COOKIE}=`));
      if (kept.length) out.cookie = kept.join("; ");
      continue;
    }
    if (k.startsWith("x-forwarded-")) continue; // set by us, never trusted from the client
    out[k] = v;
  }
  return out;
}

/** X-Forwarded-* into the upstream request's headers (forwardHeaders dropped the client's). */
function setForwarded(
  out: http.OutgoingHttpHeaders,
  req: http.IncomingMessage,
  prefix: string,
): void {
  out["x-forwarded-for"] = req.socket.remoteAddress ?? "";
  out["x-forwarded-host"] = hostOf(req) ?? "";
  out["x-forwarded-proto"] =
    (req.socket as { encrypted?: boolean }).encrypted === true ? "https" : "http";
  if (prefix) out["x-forwarded-prefix"] = prefix;
}

function responseHeaders(ur: http.IncomingMessage): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(ur.headers))
    if (v !== undefined && !HOP_BY_HOP.has(k) && k !== "keep-alive") out[k] = v;
  return out;
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

async function readJson(
  req: http.IncomingMessage,
  bounds: BodyBounds,
  call: Call,
): Promise<unknown> {
  const chunks: Buffer[] = [];
  const limit = new Limit(bounds, (n) => {
    call.bytesIn += n;
  });
  req.pipe(limit);
  // Size and time bounds fail the iteration (413, 408).
  for await (const c of limit) chunks.push(c as Buffer);
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new GatewayError(400, "BAD_REQUEST", "the body is not JSON");
  }
}

function sandboxSummary(s: SandboxObject) {
  return {
    apiVersion: s.apiVersion,
    kind: s.kind,
    metadata: s.metadata,
    spec: s.spec,
    status: s.status,
  };
}
