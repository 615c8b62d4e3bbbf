// Admission of SandboxSnapshots against the real apiserver: the source is
// required and named like a Sandbox, the spec is immutable, the status
// subresource takes what the controller records (and refuses a bad checksum),
// and `kubectl explain` teaches the fields.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  API_VERSION,
  GROUP,
  SNAPSHOT_KIND,
  SNAPSHOT_PLURAL,
  VERSION,
} from "../../src/api/group.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";

const kc = kubeConfig();
const objects = kc.makeApiClient(k8s.CustomObjectsApi);
let ns: Awaited<ReturnType<typeof testNamespace>>;

beforeAll(async () => {
  ns = await testNamespace(kc, "admission-snapshots");
});
afterAll(async () => {
  await ns?.delete();
});

const base = { group: GROUP, version: VERSION, plural: SNAPSHOT_PLURAL };
const create = (name: string, spec: unknown) =>
  objects.createNamespacedCustomObject({
    ...base,
    namespace: ns.name,
    body: { apiVersion: API_VERSION, kind: SNAPSHOT_KIND, metadata: { name }, spec },
  });

async function causes(p: Promise<unknown>): Promise<{ field?: string; message?: string }[]> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "the apiserver accepted it").toBeInstanceOf(k8s.ApiException);
  const e = err as k8s.ApiException<unknown>;
  expect(e.code).toBe(422);
  const body = (typeof e.body === "string" ? JSON.parse(e.body) : e.body) as {
    details?: { causes?: { field?: string; message?: string }[] };
  };
  return body.details?.causes ?? [];
}

describe("SandboxSnapshot admission", () => {
  it("accepts a snapshot of a sandbox", async () => {
    await create("nightly", { source: { sandboxName: "agent-1" } });
    const got = (await objects.getNamespacedCustomObject({
      ...base,
      namespace: ns.name,
      name: "nightly",
    })) as { spec: { source: { sandboxName: string } } };
    expect(got.spec.source.sandboxName).toBe("agent-1");
  });

  it("requires the source sandbox, naming the field", async () => {
    const c = await causes(create("no-source", {}));
    expect(c.find((x) => x.field === "spec.source")?.message).toContain("Required value");
  });

  it("refuses a source that cannot be a Sandbox's name", async () => {
    const c = await causes(create("bad-source", { source: { sandboxName: "Agent_1" } }));
    expect(c.find((x) => x.field === "spec.source.sandboxName")?.message).toContain("should match");
  });

  it("refuses a snapshot name that is not a DNS-1035 label", async () => {
    const c = await causes(create("1-snap", { source: { sandboxName: "a" } }));
    expect(c.find((x) => x.field === "metadata.name")?.message).toContain("should match");
  });

  it("keeps its spec immutable", async () => {
    await create("fixed", { source: { sandboxName: "a" } });
    const c = await causes(
      objects.patchNamespacedCustomObject(
        {
          ...base,
          namespace: ns.name,
          name: "fixed",
          body: { spec: { source: { sandboxName: "b" } } },
        },
        k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
      ),
    );
    expect(c.find((x) => x.field === "spec")?.message).toContain("immutable");
  });

  it("takes a status through the subresource and refuses a malformed checksum", async () => {
    await create("recorded", { source: { sandboxName: "a" } });
    const patch = (status: unknown) =>
      objects.patchNamespacedCustomObjectStatus(
        { ...base, namespace: ns.name, name: "recorded", body: { status } },
        k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
      );
    await patch({ phase: "Ready", sizeBytes: 1024, checksum: `sha256:${"ab".repeat(32)}` });
    const c = await causes(patch({ checksum: "md5:abc" }));
    expect(c.find((x) => x.field === "status.checksum")?.message).toContain("should match");
  });

  it("is explained by kubectl", () => {
    const out = execFileSync(
      join(inject("k8sBinDir"), "kubectl"),
      ["--kubeconfig", inject("kubeconfigPath"), "explain", "sandboxsnapshot.status"],
      { encoding: "utf8" },
    );
    expect(out).toContain("KIND:       SandboxSnapshot");
    expect(out).toMatch(/checksum\s+<string>/);
    expect(out).toContain("the backend's name for the copy".replace("the", "The"));
  });
});
