// Templates, warm pools and claims through the real apiserver, for tests and benchmarks.
import * as k8s from "@kubernetes/client-node";
import {
  API_VERSION,
  CLAIM_KIND,
  CLAIM_PLURAL,
  GROUP,
  POOL_KIND,
  POOL_PLURAL,
  SANDBOX_PLURAL,
  TEMPLATE_KIND,
  TEMPLATE_PLURAL,
  VERSION,
} from "../../src/api/group.js";
import type { ClaimStatus, PoolStatus } from "../../src/api/pools.js";
import type { StoredSandbox } from "./sandboxes.js";

// biome-ignore lint/suspicious/noExplicitAny: test objects are whatever the apiserver stored
type Obj = { metadata: k8s.V1ObjectMeta; spec: any };
export type StoredPool = Obj & { status?: PoolStatus };
export type StoredClaim = Obj & { status?: ClaimStatus };

const merge = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);

export class PoolClient {
  readonly objects: k8s.CustomObjectsApi;

  constructor(
    kc: k8s.KubeConfig,
    readonly namespace: string,
  ) {
    this.objects = kc.makeApiClient(k8s.CustomObjectsApi);
  }

  private ref(plural: string) {
    return { group: GROUP, version: VERSION, namespace: this.namespace, plural };
  }

  private make(plural: string, kind: string, name: string, spec: unknown, metadata = {}) {
    return this.objects.createNamespacedCustomObject({
      ...this.ref(plural),
      body: { apiVersion: API_VERSION, kind, metadata: { name, ...metadata }, spec },
    });
  }

  template(name: string, spec: Record<string, unknown>) {
    return this.make(TEMPLATE_PLURAL, TEMPLATE_KIND, name, spec);
  }
  pool(name: string, spec: Record<string, unknown>) {
    return this.make(POOL_PLURAL, POOL_KIND, name, spec);
  }
  claim(name: string, spec: Record<string, unknown>): Promise<StoredClaim> {
    return this.make(CLAIM_PLURAL, CLAIM_KIND, name, spec);
  }

  patch(plural: string, name: string, body: unknown) {
    return this.objects.patchNamespacedCustomObject({ ...this.ref(plural), name, body }, merge);
  }

  async get<T = Obj>(plural: string, name: string): Promise<T | undefined> {
    try {
      return await this.objects.getNamespacedCustomObject({ ...this.ref(plural), name });
    } catch (err) {
      if (err instanceof k8s.ApiException && err.code === 404) return undefined;
      throw err;
    }
  }

  async list<T = Obj>(plural: string, labelSelector?: string): Promise<T[]> {
    const res = await this.objects.listNamespacedCustomObject({
      ...this.ref(plural),
      labelSelector,
    });
    return (res as { items: T[] }).items;
  }

  delete(plural: string, name: string) {
    return this.objects.deleteNamespacedCustomObject({
      ...this.ref(plural),
      name,
      propagationPolicy: "Background",
    });
  }

  getPool = (name: string) => this.get<StoredPool>(POOL_PLURAL, name);
  getClaim = (name: string) => this.get<StoredClaim>(CLAIM_PLURAL, name);
  claims = () => this.list<StoredClaim>(CLAIM_PLURAL);
  sandboxes = (labelSelector?: string) => this.list<StoredSandbox>(SANDBOX_PLURAL, labelSelector);
}

export { CLAIM_PLURAL, POOL_PLURAL, SANDBOX_PLURAL, TEMPLATE_PLURAL };
