// Helpers for tests that drive Sandboxes through the real apiserver.
import * as k8s from "@kubernetes/client-node";
import { expect } from "vitest";
import { ConditionType } from "../../src/api/conditions.js";
import { API_VERSION, GROUP, SANDBOX_KIND, SANDBOX_PLURAL, VERSION } from "../../src/api/group.js";
import type { Sandbox } from "../../src/api/sandbox.js";
import type { SandboxSpecInput } from "../../src/api/sandbox-spec.js";
import { eventually } from "./eventually.js";

export type StoredSandbox = Omit<Sandbox, "spec"> & { spec: SandboxSpecInput };

export class SandboxClient {
  private readonly objects: k8s.CustomObjectsApi;
  readonly core: k8s.CoreV1Api;
  readonly networking: k8s.NetworkingV1Api;

  constructor(
    kc: k8s.KubeConfig,
    readonly namespace: string,
  ) {
    this.objects = kc.makeApiClient(k8s.CustomObjectsApi);
    this.core = kc.makeApiClient(k8s.CoreV1Api);
    this.networking = kc.makeApiClient(k8s.NetworkingV1Api);
  }

  private get ref() {
    return { group: GROUP, version: VERSION, namespace: this.namespace, plural: SANDBOX_PLURAL };
  }

  create(name: string, spec: SandboxSpecInput): Promise<StoredSandbox> {
    return this.objects.createNamespacedCustomObject({
      ...this.ref,
      body: { apiVersion: API_VERSION, kind: SANDBOX_KIND, metadata: { name }, spec },
    });
  }

  async get(name: string): Promise<StoredSandbox | undefined> {
    try {
      return await this.objects.getNamespacedCustomObject({ ...this.ref, name });
    } catch (err) {
      if (err instanceof k8s.ApiException && err.code === 404) return undefined;
      throw err;
    }
  }

  patchSpec(name: string, spec: Partial<SandboxSpecInput>): Promise<StoredSandbox> {
    return this.mergePatch(name, { spec });
  }

  mergePatch(name: string, body: object): Promise<StoredSandbox> {
    return this.objects.patchNamespacedCustomObject(
      { ...this.ref, name, body },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
  }

  delete(name: string): Promise<unknown> {
    return this.objects.deleteNamespacedCustomObject({ ...this.ref, name });
  }

  /** Wait until the stored Sandbox satisfies `check` (which asserts with expect). */
  waitFor(
    name: string,
    check: (s: StoredSandbox) => void,
    timeout = 20_000,
  ): Promise<StoredSandbox> {
    return eventually(
      async () => {
        const s = await this.get(name);
        expect(s, `sandbox ${name} exists`).toBeDefined();
        check(s!);
        return s!;
      },
      { timeout },
    );
  }

  waitGone(name: string, timeout = 20_000): Promise<void> {
    return eventually(
      async () => {
        expect(await this.get(name), `sandbox ${name} is gone`).toBeUndefined();
      },
      { timeout },
    );
  }

  pod(name: string): Promise<k8s.V1Pod | undefined> {
    return this.core.readNamespacedPod({ name, namespace: this.namespace }).catch(notFound);
  }

  /** Take a Pod's status away from kwok (the stand-in kubelet) and set it ourselves. */
  async setPodStatus(name: string, status: k8s.V1PodStatus): Promise<void> {
    await this.core.patchNamespacedPod(
      {
        name,
        namespace: this.namespace,
        body: { metadata: { annotations: { "test.sandboxing.dev/hold": "true" } } },
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    await this.core.patchNamespacedPodStatus(
      { name, namespace: this.namespace, body: { status } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
  }

  async events(name: string): Promise<k8s.CoreV1Event[]> {
    const list = await this.core.listNamespacedEvent({
      namespace: this.namespace,
      fieldSelector: `involvedObject.name=${name}`,
    });
    return list.items;
  }
}

export function notFound(err: unknown): undefined {
  if (err instanceof k8s.ApiException && err.code === 404) return undefined;
  throw err;
}

export function condition(s: StoredSandbox, type: string) {
  return s.status?.conditions?.find((c) => c.type === type);
}

export const isReady = (s: StoredSandbox) =>
  expect(condition(s, ConditionType.Ready)?.status, JSON.stringify(s.status)).toBe("True");
