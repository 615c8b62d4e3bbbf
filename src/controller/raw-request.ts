// Requests to the apiserver as plain JSON, for where the typed clients do not
// fit: informers (watch events arrive as plain JSON, so lists must too, or the
// cache would mix representations), any resource named by group/version/plural
// (status, finalizers), and MicroTime fields (Leases, events.k8s.io Events: the
// typed clients serialize them with milliseconds, which the apiserver rejects).
import type * as k8s from "@kubernetes/client-node";
import { HttpMethod, RequestContext } from "@kubernetes/client-node";
import { getGlobalDispatcher, request } from "undici";
import { notLeaderCause } from "./write-gate.js";

/** An HTTP error from the apiserver; `body` is the Kubernetes Status when there is one. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly statusCode: number,
    message: string,
    readonly body?: { message?: string; reason?: string },
  ) {
    super(message);
  }
}

/** A resource type, e.g. {group: "", version: "v1", plural: "configmaps"}. */
export interface ResourceRef {
  group: string;
  version: string;
  plural: string;
}

/** API path of a collection or, with `name`, of one object (and a subresource). */
export function resourcePath(
  ref: ResourceRef,
  namespace: string | undefined,
  name?: string,
  subresource?: string,
): string {
  const base = ref.group ? `/apis/${ref.group}/${ref.version}` : `/api/${ref.version}`;
  const ns = namespace ? `/namespaces/${encodeURIComponent(namespace)}` : "";
  const obj = name ? `/${encodeURIComponent(name)}` : "";
  return `${base}${ns}/${ref.plural}${obj}${subresource ? `/${subresource}` : ""}`;
}

export interface RawRequest {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  /** The Accept header (default: the apiserver's JSON). */
  accept?: string;
  signal?: AbortSignal;
}

export async function rawRequest<T>(
  kc: k8s.KubeConfig,
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE",
  path: string,
  { query = {}, body, contentType = "application/json", accept, signal }: RawRequest = {},
): Promise<T> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("no current cluster in the kubeconfig");
  const url = new URL(cluster.server + path);
  for (const [k, v] of Object.entries(query))
    if (v !== undefined) url.searchParams.set(k, String(v));
  const ctx = new RequestContext(url.toString(), HttpMethod[method]);
  // Authentication can wait (for a rate-limit token): a reconcile aborted meanwhile sends nothing.
  await kc.applySecurityAuthentication(ctx);
  signal?.throwIfAborted();
  // undici's request, not fetch: fetch's WHATWG streams, request cloning and
  // body tee showed in the controller's CPU profile at scale for nothing a
  // JSON round trip needs.
  let res: Awaited<ReturnType<typeof request>>;
  let text: string;
  try {
    res = await request(url, {
      method,
      headers: {
        ...ctx.getHeaders(),
        ...(accept ? { accept } : {}),
        ...(body === undefined ? {} : { "content-type": contentType }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      dispatcher: ctx.getDispatcher() ?? getGlobalDispatcher(),
      signal,
    });
    text = await res.body.text();
  } catch (err) {
    // A request the write gate refused fails with the refusal (or wraps it as the cause).
    throw notLeaderCause(err) ?? err;
  }
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (res.statusCode >= 300) {
    const status = parsed as { message?: string; reason?: string } | undefined;
    const message = status?.message ?? (text.slice(0, 200) || `HTTP ${res.statusCode}`);
    throw new ApiError(
      res.statusCode,
      `${method} ${path}: ${message} (HTTP ${res.statusCode})`,
      status,
    );
  }
  return parsed as T;
}

export interface RawList<T> {
  items: T[];
  metadata: { resourceVersion?: string; continue?: string };
}

/** LIST every page of a collection; the result carries the last page's resourceVersion. */
export async function listRaw<T>(
  kc: k8s.KubeConfig,
  path: string,
  params: {
    labelSelector?: string;
    fieldSelector?: string;
    limit?: number;
    accept?: string;
    signal?: AbortSignal;
  },
): Promise<RawList<T>> {
  const items: T[] = [];
  let token: string | undefined;
  let resourceVersion: string | undefined;
  do {
    const page: RawList<T> = await rawRequest(kc, "GET", path, {
      query: {
        labelSelector: params.labelSelector,
        fieldSelector: params.fieldSelector,
        // Pages bound the size of any one response on a large cluster.
        limit: params.limit ?? 500,
        continue: token,
      },
      accept: params.accept,
      signal: params.signal,
    });
    // A metadata-only list of nothing has `items: null`.
    items.push(...(page.items ?? []));
    token = page.metadata.continue || undefined;
    resourceVersion = page.metadata.resourceVersion;
  } while (token);
  return { items, metadata: { resourceVersion } };
}

/**
 * Accept headers asking for metadata only (PartialObjectMetadata), as
 * client-go's metadata informers do: an object's name, labels and UID without
 * its spec and status, for watches that only need to know an object exists.
 */
export const METADATA_ONLY = {
  list: "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
  watch: "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
} as const;

/** metav1.MicroTime: RFC 3339 with exactly six fractional digits, as the apiserver insists. */
export function microTime(d = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

export interface WatchRequest {
  query: Record<string, string | number | boolean | undefined>;
  signal: AbortSignal;
  /** The Accept header (default: the apiserver's JSON). */
  accept?: string;
  /** Every event, in order; the object is plain JSON. */
  onEvent(type: string, object: unknown): void;
  /** The apiserver answered 200: events follow. */
  onConnected?(): void;
}

/**
 * A watch over undici's request: resolves when the apiserver ends the stream,
 * rejects on an HTTP error (an ApiError, e.g. 410) or a broken connection.
 * client-node's Watch goes through fetch, a WHATWG stream converted back to a
 * Node stream and readline; in the controller's profile at scale that plumbing
 * cost about as much as parsing the events' JSON. Here each chunk is split on
 * newlines and each complete line parsed once.
 */
export async function watchRaw(
  kc: k8s.KubeConfig,
  path: string,
  { query, signal, accept, onEvent, onConnected }: WatchRequest,
): Promise<void> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("no current cluster in the kubeconfig");
  const url = new URL(cluster.server + path);
  url.searchParams.set("watch", "true");
  for (const [k, v] of Object.entries(query))
    if (v !== undefined) url.searchParams.set(k, String(v));
  const ctx = new RequestContext(url.toString(), HttpMethod.GET);
  await kc.applySecurityAuthentication(ctx);
  signal.throwIfAborted();
  const res = await request(url, {
    method: "GET",
    headers: accept ? { ...ctx.getHeaders(), accept } : ctx.getHeaders(),
    dispatcher: ctx.getDispatcher() ?? getGlobalDispatcher(),
    signal,
    // A watch is silent between events by design; the caller's watchdog judges silence.
    bodyTimeout: 0,
  });
  if (res.statusCode !== 200) {
    const text = await res.body.text();
    let status: { message?: string; reason?: string } | undefined;
    try {
      status = JSON.parse(text);
    } catch {
      status = undefined;
    }
    const message = status?.message ?? (text.slice(0, 200) || `HTTP ${res.statusCode}`);
    throw new ApiError(
      res.statusCode,
      `WATCH ${path}: ${message} (HTTP ${res.statusCode})`,
      status,
    );
  }
  onConnected?.();
  res.body.setEncoding("utf8");
  let partial = "";
  for await (const chunk of res.body as AsyncIterable<string>) {
    let start = 0;
    let end = chunk.indexOf("\n");
    if (end < 0) {
      partial += chunk;
      continue;
    }
    let line = partial + chunk.slice(0, end);
    partial = "";
    for (;;) {
      if (line.length > 1) {
        let event: { type?: string; object?: unknown } | undefined;
        try {
          event = JSON.parse(line);
        } catch {
          event = undefined; // not JSON: skipped, as client-node's Watch does
        }
        if (event?.type) onEvent(event.type, event.object);
      }
      start = end + 1;
      end = chunk.indexOf("\n", start);
      if (end < 0) break;
      line = chunk.slice(start, end);
    }
    partial = chunk.slice(start);
  }
}
