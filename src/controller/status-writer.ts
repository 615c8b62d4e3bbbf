// Writes the status subresource of custom objects, and only when the status
// actually changes: an idle object costs no API writes. Each write carries the
// cached resourceVersion, so a status computed from a stale cache is rejected
// (409) and recomputed instead of overwriting something newer.
import { isDeepStrictEqual } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { Counter, type Registry } from "prom-client";

export interface CustomResource {
  group: string;
  version: string;
  plural: string;
}

interface Obj {
  metadata: { name?: string; namespace?: string; resourceVersion?: string };
  status?: object;
}

export class StatusWriter {
  private readonly api: k8s.CustomObjectsApi;
  private readonly counter: Counter<"resource">;
  /** Status writes made, for tests and debugging (the metric has the same number). */
  writes = 0;

  constructor(
    kubeConfig: k8s.KubeConfig,
    private readonly resource: CustomResource,
    registry: Registry,
    prefix: string,
  ) {
    this.api = kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    this.counter = new Counter({
      name: `${prefix}_status_writes_total`,
      help: "Status subresource writes",
      labelNames: ["resource"] as const,
      registers: [registry],
    });
  }

  /** Write `status` if it differs from the object's; returns whether it wrote. */
  async write(obj: Obj, status: object): Promise<boolean> {
    if (statusEqual(obj.status, status)) return false;
    // A merge patch keeps keys it does not mention: name the removed ones as null.
    const body: Record<string, unknown> = { ...status };
    for (const key of Object.keys(obj.status ?? {})) if (!(key in body)) body[key] = null;
    await this.api.patchNamespacedCustomObjectStatus(
      {
        ...this.resource,
        namespace: obj.metadata.namespace!,
        name: obj.metadata.name!,
        body: { metadata: { resourceVersion: obj.metadata.resourceVersion }, status: body },
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    this.writes++;
    this.counter.inc({ resource: this.resource.plural });
    return true;
  }
}

/** Deep equality, ignoring the order of conditions and undefined fields. */
export function statusEqual(a: object | undefined, b: object | undefined): boolean {
  return isDeepStrictEqual(normalize(a ?? {}), normalize(b ?? {}));
}

function normalize(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalize);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined || v === null) continue;
    out[k] =
      k === "conditions" && Array.isArray(v)
        ? [...v].sort((x, y) => String(x.type).localeCompare(String(y.type))).map(normalize)
        : normalize(v);
  }
  return out;
}
