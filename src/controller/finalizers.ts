// Adding and removing a finalizer with optimistic concurrency: the patch carries
// the resourceVersion it was computed from, so a concurrent writer's change is
// never clobbered (the apiserver answers 409 and the caller retries).
import * as k8s from "@kubernetes/client-node";
import type { CustomResource } from "./status-writer.js";

interface Obj {
  metadata: { name?: string; namespace?: string; resourceVersion?: string; finalizers?: string[] };
}

export class Finalizers {
  private readonly api: k8s.CustomObjectsApi;

  constructor(
    kubeConfig: k8s.KubeConfig,
    private readonly resource: CustomResource,
  ) {
    this.api = kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  }

  async add(obj: Obj, finalizer: string): Promise<void> {
    const current = obj.metadata.finalizers ?? [];
    if (current.includes(finalizer)) return;
    await this.set(obj, [...current, finalizer]);
  }

  async remove(obj: Obj, finalizer: string): Promise<void> {
    const current = obj.metadata.finalizers ?? [];
    if (!current.includes(finalizer)) return;
    await this.set(
      obj,
      current.filter((f) => f !== finalizer),
    );
  }

  private async set(obj: Obj, finalizers: string[]): Promise<void> {
    await this.api.patchNamespacedCustomObject(
      {
        ...this.resource,
        namespace: obj.metadata.namespace!,
        name: obj.metadata.name!,
        body: { metadata: { resourceVersion: obj.metadata.resourceVersion, finalizers } },
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
  }
}
