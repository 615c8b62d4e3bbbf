// Installs (or updates) CRD manifests and waits until the apiserver serves them.
// Used by the test harness and by local dev mode; in clusters, Helm installs CRDs.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";

/**
 * Reads CRD manifests into client-node's typed models. The typed API client
 * serializes by model property names, so a plain parsed object would silently
 * lose keys such as `x-kubernetes-validations`: loadAllYaml maps them.
 */
export function readCRDs(dir: string): k8s.V1CustomResourceDefinition[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .flatMap((f) => k8s.loadAllYaml(readFileSync(join(dir, f), "utf8")))
    .filter((o): o is k8s.V1CustomResourceDefinition => o?.kind === "CustomResourceDefinition");
}

export async function installCRDs(
  kc: k8s.KubeConfig,
  crds: k8s.V1CustomResourceDefinition[],
  timeoutMs = 30_000,
): Promise<void> {
  const api = kc.makeApiClient(k8s.ApiextensionsV1Api);
  for (const crd of crds) {
    const name = crd.metadata!.name!;
    try {
      const existing = await api.readCustomResourceDefinition({ name });
      crd.metadata!.resourceVersion = existing.metadata?.resourceVersion;
      await api.replaceCustomResourceDefinition({ name, body: crd });
    } catch (err) {
      if (!(err instanceof k8s.ApiException) || err.code !== 404) throw err;
      await api.createCustomResourceDefinition({ body: crd });
    }
  }
  const deadline = Date.now() + timeoutMs;
  for (const crd of crds) {
    const name = crd.metadata!.name!;
    for (;;) {
      const current = await api.readCustomResourceDefinition({ name });
      const established = current.status?.conditions?.find((c) => c.type === "Established");
      if (established?.status === "True") break;
      if (Date.now() > deadline)
        throw new Error(`CRD ${name} not established: ${JSON.stringify(current.status)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
