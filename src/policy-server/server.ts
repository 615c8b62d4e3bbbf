// The controller's policy endpoint (HTTPS, port 15090): the thin shell around
// ./decide.ts. A sandbox Pod's egress sidecar holds `GET /v1/policy?watch=1`
// and is sent its Sandbox's policy, one JSON line per change, straight from
// the informer's update (no reconcile in between); it acknowledges each with
// `POST /v1/policy/applied`, which is recorded on the Pod as an annotation so
// the pod backend reports EgressReady only for an applied policy, and so the
// fact survives a controller restart and reaches whichever replica leads.
//
// Authentication is the Pod's projected ServiceAccount token (audience
// POLICY_AUDIENCE), reviewed by the apiserver; authorization is the Pod the
// token is bound to: that Pod's Sandbox's policy, only while it is the
// Sandbox's current Pod. Every replica serves (informers run everywhere); the
// acknowledgement is a fact the sidecar reports, not a decision, so a
// non-leader may record it.
import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import http2, { type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import type * as k8s from "@kubernetes/client-node";
import type { Sandbox } from "../api/sandbox.js";
import { POLICY_ANNOTATION, policyAnnotation } from "../backends/pod/egress.js";
import { KindClient } from "../controller/kind-client.js";
import { rawRequest } from "../controller/raw-request.js";
import { BoundedCache, RateLimiter } from "../gateway/limits.js";
import { keyOf } from "../kube/object-key.js";
import type { Logger } from "../observability/logger.js";
import type { AppliedPolicies } from "./applied.js";
import {
  APPLIED_PATH,
  POLICY_APPLIED_ANNOTATION,
  POLICY_AUDIENCE,
  POLICY_PATH,
  type PolicyMessage,
} from "./contract.js";
import {
  AckSchema,
  ackDecision,
  authorize,
  identityOf,
  isRefusal,
  type PodIdentity,
  policyMessage,
  type Refusal,
  type TokenReviewStatus,
} from "./decide.js";

/** What the endpoint reads: the controller's informers (cache and change events). */
export interface Watched<T> {
  get(key: string): T | undefined;
  on(handler: {
    add?: (obj: T) => void;
    update?: (obj: T, old: T) => void;
    delete?: (obj: T) => void;
  }): void;
}

export interface PolicyServerOptions {
  /** For TokenReviews and the acknowledgement's Pod patch (not write-gated: see above). */
  kubeConfig: k8s.KubeConfig;
  pods: Watched<k8s.V1Pod>;
  sandboxes: Watched<Sandbox>;
  tls: { cert: string | Buffer; key: string | Buffer };
  listen: { host: string; port: number };
  log: Logger;
  /** An empty line this often, so either side notices a dead connection (default 10 s). */
  heartbeatMs?: number;
  /**
   * A stream ends after this long (default 5 min) and the sidecar reconnects,
   * presenting its (rotated) token again: nothing stays authorized on a
   * review older than this.
   */
  maxStreamMs?: number;
  /** How long a TokenReview answer is reused (default 30 s; never past the token's Pod check, done per request). */
  reviewCacheMs?: number;
  /** Where accepted acknowledgements are also kept in memory, for this replica's pod backend (./applied.ts). */
  applied?: AppliedPolicies;
  /** A sandbox's policy was acknowledged anew: reconcile it now, not on the Pod write's watch event. */
  onApplied?: (key: string) => void;
}

/** HTTP/2 (the sidecar: its acknowledgements share the watch's connection) or HTTP/1.1. */
type Request = IncomingMessage | Http2ServerRequest;
/** What this server uses of either protocol's response. */
interface Response {
  readonly headersSent: boolean;
  writeHead(status: number, headers: Record<string, string>): unknown;
  write(chunk: string): boolean;
  end(chunk?: string): unknown;
  destroy(): unknown;
  on(event: "close", listener: () => void): unknown;
}

interface Stream {
  podUid: string;
  /** The digest of the token the stream was opened with. */
  token: string;
  res: Response;
  sent: string;
  timers: NodeJS.Timeout[];
}

const MAX_BODY = 4096;

export class PolicyServer {
  private server?: http2.Http2SecureServer;
  /** Open connections, ended on stop (an HTTP/2 server has no closeAllConnections). */
  private readonly sockets = new Set<Socket>();
  /** Open watch streams by Sandbox key. */
  private readonly streams = new Map<string, Set<Stream>>();
  private readonly reviews: BoundedCache<PodIdentity | Refusal>;
  /**
   * Tokens that hold an open watch stream (digest -> who, and how many
   * streams): a request presenting one is the stream's own sidecar, trusted
   * as the stream is (its review is at most maxStreamMs old; acknowledgements
   * only, see authenticate), so the
   * acknowledgement of a warm claim's policy waits for no TokenReview when
   * the review cache has let go of a sandbox that sat in its pool for longer.
   */
  private readonly streamTokens = new Map<string, { who: PodIdentity; streams: number }>();
  /** TokenReviews per client address: a sprayer of random tokens is cut off, not amplified. */
  private readonly reviewLimit = new RateLimiter({ rps: 20, burst: 50 });
  private readonly pods: KindClient<k8s.V1Pod>;
  /** Acknowledgements recorded on Pods, by kind of outcome (for tests and metrics). */
  readonly stats = { streams: 0, sent: 0, acks: 0, ackWrites: 0, refused: 0, reviews: 0 };
  /** Per-message debug lines are built only when they would be written. */
  private readonly debug: boolean;

  constructor(private readonly opts: PolicyServerOptions) {
    this.debug = opts.log.isLevelEnabled("debug");
    this.reviews = new BoundedCache(10_000, opts.reviewCacheMs ?? 30_000);
    this.pods = new KindClient<k8s.V1Pod>(opts.kubeConfig, {
      group: "",
      version: "v1",
      plural: "pods",
    });
    opts.sandboxes.on({
      add: (s) => this.push(s),
      update: (s) => this.push(s),
      delete: (s) => this.endAll(keyOf(s)),
    });
    opts.pods.on({
      update: (p) => this.prune(p),
      delete: (p) => this.prune(p, true),
    });
  }

  async start(): Promise<{ port: number }> {
    // HTTP/2 first: a sidecar's acknowledgement is one more stream on the
    // connection its watch holds open, not a new TCP and TLS handshake (which
    // measured 100-130 ms under load on the real node, the largest part of a
    // warm claim's time). HTTP/1.1 still served for other clients.
    const server = http2.createSecureServer(
      {
        cert: this.opts.tls.cert,
        key: this.opts.tls.key,
        minVersion: "TLSv1.3",
        allowHTTP1: true,
      },
      (req, raw: ServerResponse | Http2ServerResponse) => {
        const res = raw as Response;
        this.handle(req, res).catch((err) => {
          this.opts.log.error({ err: String(err) }, "policy endpoint request failed");
          if (!res.headersSent) reply(res, 500, { error: "INTERNAL", message: "internal error" });
          else res.destroy();
        });
      },
    );
    server.on("secureConnection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
    });
    // Watches are long; idle ones are ended by maxStreamMs.
    server.setTimeout(0);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.opts.listen.port, this.opts.listen.host, () => resolve());
    });
    this.server = server;
    return { port: (server.address() as AddressInfo).port };
  }

  async stop(): Promise<void> {
    for (const key of [...this.streams.keys()]) this.endAll(key);
    const server = this.server;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  /** Open watch streams (for tests). */
  openStreams(): number {
    let n = 0;
    for (const set of this.streams.values()) n += set.size;
    return n;
  }

  private async handle(req: Request, res: Response): Promise<void> {
    const url = new URL(req.url ?? "/", "https://policy");
    const remote = req.socket.remoteAddress ?? "unknown";
    const route =
      req.method === "GET" && url.pathname === POLICY_PATH
        ? "policy"
        : req.method === "POST" && url.pathname === APPLIED_PATH
          ? "applied"
          : undefined;
    if (!route) return reply(res, 404, { error: "NOT_FOUND", message: "no such endpoint" });
    const token = tokenDigest(req.headers.authorization);
    const who = await this.authenticate(
      req.headers.authorization,
      token,
      remote,
      route === "applied",
    );
    if (isRefusal(who)) return this.refuse(res, who, remote);
    const key = `${who.namespace}/${who.podName}`;
    const pod = this.opts.pods.get(key);
    const sandbox = authorize(who, pod, this.opts.sandboxes.get(key));
    if (isRefusal(sandbox)) return this.refuse(res, sandbox, remote, who);
    if (route === "applied") return this.applied(req, res, who, sandbox, pod!);
    const message = policyMessage(sandbox);
    if (url.searchParams.get("watch") !== "1" && url.searchParams.get("watch") !== "true")
      return reply(res, 200, message);
    this.watch(key, who, token!, res, message);
  }

  private watch(
    key: string,
    who: PodIdentity,
    token: string,
    res: Response,
    first: PolicyMessage,
  ): void {
    res.writeHead(200, {
      "content-type": "application/x-ndjson",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
    });
    // The first message follows at once, and sends the headers with it.
    const stream: Stream = { podUid: who.podUid, token, res, sent: "", timers: [] };
    const held = this.streamTokens.get(token);
    if (held) held.streams++;
    else this.streamTokens.set(token, { who, streams: 1 });
    const set = this.streams.get(key) ?? new Set<Stream>();
    this.streams.set(key, set);
    set.add(stream);
    this.stats.streams++;
    this.send(stream, first);
    const heartbeat = setInterval(() => res.write("\n"), this.opts.heartbeatMs ?? 10_000);
    const expire = setTimeout(() => res.end(), this.opts.maxStreamMs ?? 300_000);
    stream.timers.push(heartbeat, expire);
    res.on("close", () => {
      for (const t of stream.timers) clearTimeout(t);
      set.delete(stream);
      if (set.size === 0 && this.streams.get(key) === set) this.streams.delete(key);
      const t = this.streamTokens.get(token);
      if (t && --t.streams <= 0) this.streamTokens.delete(token);
    });
    this.opts.log.info({ sandbox: key, pod: who.podUid }, "egress sidecar watching its policy");
  }

  private send(stream: Stream, m: PolicyMessage, key?: string): void {
    if (stream.sent === m.hash) return;
    stream.sent = m.hash;
    this.stats.sent++;
    stream.res.write(`${JSON.stringify(m)}\n`);
    // For bench/pools/trace.ts: when a claim's policy left for its sidecar.
    if (key && this.debug)
      this.opts.log.debug(
        { sandbox: key, generation: m.generation, hash: m.hash },
        "egress policy sent",
      );
  }

  /** A Sandbox changed: its watchers get the new policy (once per distinct policy). */
  private push(sandbox: Sandbox): void {
    const set = this.streams.get(keyOf(sandbox));
    if (!set) return;
    const m = policyMessage(sandbox);
    for (const s of set) this.send(s, m, keyOf(sandbox));
  }

  /** A Pod changed or went: streams of a Pod that is no longer current end. */
  private prune(pod: k8s.V1Pod, deleted = false): void {
    const set = this.streams.get(keyOf(pod));
    if (!set) return;
    for (const s of set) {
      if (deleted || pod.metadata?.uid !== s.podUid || pod.metadata?.deletionTimestamp) s.res.end();
    }
  }

  private endAll(key: string): void {
    for (const s of this.streams.get(key) ?? []) s.res.end();
  }

  private async applied(
    req: Request,
    res: Response,
    who: PodIdentity,
    sandbox: Sandbox,
    pod: k8s.V1Pod,
  ): Promise<void> {
    const text = await readBody(req);
    if (text === undefined)
      return reply(res, 413, { error: "TOO_LARGE", message: "body over 4 KiB" });
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return reply(res, 400, { error: "BAD_JSON", message: "the body is not JSON" });
    }
    const ack = AckSchema.safeParse(json);
    if (!ack.success) {
      const issue = ack.error.issues[0]!;
      return reply(res, 400, {
        error: "BAD_ACK",
        message: `${issue.path.join(".") || "body"}: ${issue.message}`,
      });
    }
    this.stats.acks++;
    if (this.debug)
      this.opts.log.debug(
        { sandbox: `${who.namespace}/${who.podName}`, hash: ack.data.hash },
        "egress policy acknowledged",
      );
    const recorded = pod.metadata?.annotations?.[POLICY_APPLIED_ANNOTATION];
    const decision = ackDecision(ack.data, sandbox, recorded);
    if (isRefusal(decision)) return this.refuse(res, decision, "", who);
    if (decision.record) {
      // Known here first: this replica's reconcile reads it beside the Pod's
      // annotation, and runs now rather than on the Pod write's watch event.
      this.opts.applied?.record(who.podUid, ack.data.hash);
      this.opts.onApplied?.(`${who.namespace}/${who.podName}`);
      // The UID pins the Pod the token is bound to: a replacement is refused
      // (409). The policy file (the start-up policy of a restarted sidecar)
      // rides the same write: the reconcile leaves it to this one
      // (src/backends/pod/policy-file.ts), so a policy change is one Pod write.
      await this.pods.mergePatch(who.podName, who.namespace, {
        metadata: {
          uid: who.podUid,
          annotations: {
            [POLICY_APPLIED_ANNOTATION]: ack.data.hash,
            [POLICY_ANNOTATION]: policyAnnotation(sandbox.spec.network.egress),
          },
        },
      });
      this.stats.ackWrites++;
    }
    reply(res, 200, { recorded: ack.data.hash });
  }

  private async authenticate(
    authorization: string | undefined,
    digest: string | undefined,
    remote: string,
    /**
     * An acknowledgement may ride an open stream's review. A watch may not:
     * each stream is opened on a review of its own, so none stays authorized
     * on a review older than maxStreamMs (a chain of streams would).
     */
    ack: boolean,
  ): Promise<PodIdentity | Refusal> {
    const m = /^Bearer ([A-Za-z0-9._-]{1,8192})$/.exec(authorization ?? "");
    if (!m || !digest)
      return { status: 401, code: "NO_CREDENTIAL", message: "Authorization: Bearer <token>" };
    const cached = this.reviews.get(digest);
    if (cached) return cached;
    // The Pod is still checked per request (authorize): only the review is reused.
    const streaming = ack ? this.streamTokens.get(digest) : undefined;
    if (streaming) return streaming.who;
    if (!this.reviewLimit.take(remote))
      return { status: 429, code: "RATE_LIMITED", message: "too many unknown tokens" };
    this.stats.reviews++;
    const review = await rawRequest<{ status?: TokenReviewStatus }>(
      this.opts.kubeConfig,
      "POST",
      "/apis/authentication.k8s.io/v1/tokenreviews",
      {
        body: {
          apiVersion: "authentication.k8s.io/v1",
          kind: "TokenReview",
          spec: { token: m[1], audiences: [POLICY_AUDIENCE] },
        },
      },
    );
    const who = identityOf(review.status);
    this.reviews.set(digest, who);
    return who;
  }

  private refuse(res: Response, r: Refusal, remote: string, who?: PodIdentity): void {
    this.stats.refused++;
    this.opts.log.warn(
      { code: r.code, remote, pod: who && `${who.namespace}/${who.podName}` },
      `policy endpoint refused a request: ${r.message}`,
    );
    reply(res, r.status, { error: r.code, message: r.message });
  }
}

/** The sha256 of a bearer token (what caches and streams key on; never the token itself). */
function tokenDigest(authorization: string | undefined): string | undefined {
  const m = /^Bearer ([A-Za-z0-9._-]{1,8192})$/.exec(authorization ?? "");
  return m ? createHash("sha256").update(m[1]!).digest("base64url") : undefined;
}

function reply(res: Response, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(text);
}

async function readBody(req: Request): Promise<string | undefined> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}
