// What the benchmark creates: Sandboxes (the operator's input), and for the
// floor the very Pods and NetworkPolicies the pod backend would make for them,
// minus owner and managed-by label, created straight from a client loop.
import * as k8s from "@kubernetes/client-node";
import { API_VERSION, GROUP, SANDBOX_KIND, SANDBOX_PLURAL, VERSION } from "../../src/api/group.js";
import { Labels } from "../../src/api/labels.js";
import { type Sandbox, SandboxSchema } from "../../src/api/sandbox.js";
import type { SandboxSpecInput } from "../../src/api/sandbox-spec.js";
import { desiredNetworkPolicy } from "../../src/backends/pod/network-policy.js";
import { desiredPod } from "../../src/backends/pod/pod.js";

export const EGRESS_IMAGE = "sandbox-operator:dev";

/** Small requests so thousands fit the fake node; an hour to live, so none expires mid-run. */
export const BENCH_SPEC: SandboxSpecInput = {
  image: "busybox",
  command: ["sleep", "infinity"],
  resources: { cpu: "100m", memory: "64Mi" },
  lifetime: { ttlSeconds: 3600 },
};

export const sandboxName = (prefix: string, i: number) => `${prefix}-${String(i).padStart(5, "0")}`;

export function sandboxManifest(namespace: string, name: string) {
  return {
    apiVersion: API_VERSION,
    kind: SANDBOX_KIND,
    metadata: { name, namespace },
    spec: BENCH_SPEC,
  };
}

/** The Pod and NetworkPolicy the operator would create for a sandbox `name`, unowned. */
export function floorObjects(
  namespace: string,
  name: string,
): { pod: k8s.V1Pod; networkPolicy: k8s.V1NetworkPolicy } {
  const sandbox: Sandbox = SandboxSchema.parse({
    ...sandboxManifest(namespace, name),
    metadata: { name, namespace, uid: `floor-${name}`, generation: 1 },
  });
  const unowned = <T extends { metadata?: k8s.V1ObjectMeta }>(o: T): T => {
    delete o.metadata!.ownerReferences;
    // Outside the operator's label selector, so its caches never see the floor.
    delete o.metadata!.labels![Labels.managedBy];
    return o;
  };
  return {
    pod: unowned(desiredPod(sandbox, { image: EGRESS_IMAGE })),
    networkPolicy: unowned(desiredNetworkPolicy(sandbox)),
  };
}

/** Typed client-node calls, as a user's program would make them. */
export class Clients {
  readonly core: k8s.CoreV1Api;
  readonly networking: k8s.NetworkingV1Api;
  readonly objects: k8s.CustomObjectsApi;

  constructor(kc: k8s.KubeConfig) {
    this.core = kc.makeApiClient(k8s.CoreV1Api);
    this.networking = kc.makeApiClient(k8s.NetworkingV1Api);
    this.objects = kc.makeApiClient(k8s.CustomObjectsApi);
  }

  createSandbox(namespace: string, name: string): Promise<unknown> {
    return this.objects.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: SANDBOX_PLURAL,
      namespace,
      body: sandboxManifest(namespace, name),
    });
  }

  deleteSandbox(namespace: string, name: string): Promise<unknown> {
    return this.objects.deleteNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: SANDBOX_PLURAL,
      namespace,
      name,
    });
  }

  async createFloor(namespace: string, name: string): Promise<void> {
    const { pod, networkPolicy } = floorObjects(namespace, name);
    // The operator's order: the fence first, then the workload.
    await this.networking.createNamespacedNetworkPolicy({ namespace, body: networkPolicy });
    await this.core.createNamespacedPod({ namespace, body: pod });
  }

  async deleteFloor(namespace: string, name: string): Promise<void> {
    await this.core.deleteNamespacedPod({ namespace, name });
    await this.networking.deleteNamespacedNetworkPolicy({ namespace, name });
  }
}

export { pool } from "../support/stats.js";
