// Requests to the apiserver as plain JSON, for the two places the typed clients
// do not fit: informers (watch events arrive as plain JSON, so lists must too,
// or the cache would mix representations) and Leases (the typed client
// serializes MicroTime with milliseconds, which the apiserver rejects).
import * as k8s from "@kubernetes/client-node";
import { fetch } from "undici";

export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface RawRequest {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
}

export async function rawRequest<T>(
  kc: k8s.KubeConfig,
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE",
  path: string,
  { query = {}, body, contentType = "application/json" }: RawRequest = {},
): Promise<T> {
  const url = new URL(kc.getCurrentCluster()!.server + path);
  for (const [k, v] of Object.entries(query))
    if (v !== undefined) url.searchParams.set(k, String(v));
  const ctx = new k8s.RequestContext(url.toString(), k8s.HttpMethod[method]);
  await kc.applySecurityAuthentication(ctx);
  const headers = {
    ...ctx.getHeaders(),
    ...(body === undefined ? {} : { "content-type": contentType }),
  };
  const res = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    dispatcher: ctx.getDispatcher(),
  });
  const text = await res.text();
  const parsed = text ? JSON.parse(text) : undefined;
  if (res.status >= 300) {
    throw new ApiError(
      res.status,
      `${method} ${path}: ${parsed?.message ?? res.statusText} (HTTP ${res.status})`,
    );
  }
  return parsed as T;
}

export interface RawList<T> {
  items: T[];
  metadata: { resourceVersion: string; continue?: string };
}

/** LIST every page of a collection. */
export async function listRaw<T>(
  kc: k8s.KubeConfig,
  path: string,
  params: { labelSelector?: string; fieldSelector?: string; limit?: number },
): Promise<RawList<T>> {
  const items: T[] = [];
  let token: string | undefined;
  let resourceVersion = "";
  do {
    const page: RawList<T> = await rawRequest(kc, "GET", path, {
      query: {
        labelSelector: params.labelSelector,
        fieldSelector: params.fieldSelector,
        // Pages bound the size of any one response on a large cluster.
        limit: params.limit ?? 500,
        continue: token,
      },
    });
    items.push(...page.items);
    token = page.metadata.continue || undefined;
    resourceVersion = page.metadata.resourceVersion;
  } while (token);
  return { items, metadata: { resourceVersion } };
}
