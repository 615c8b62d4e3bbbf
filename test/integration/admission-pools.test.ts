// Admission of templates, warm pools and claims against the real apiserver:
// the corpus (rejections name their field; acceptances read back with
// defaults), immutability of a claim's references, the scale subresource as
// `kubectl scale` uses it, and `kubectl explain` / `kubectl get` output.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parse } from "yaml";
import {
  API_VERSION,
  CLAIM_KIND,
  CLAIM_PLURAL,
  GROUP,
  POOL_KIND,
  POOL_PLURAL,
  TEMPLATE_KIND,
  TEMPLATE_PLURAL,
  VERSION,
} from "../../src/api/group.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { REPO_ROOT } from "../support/paths.js";

interface Case {
  name: string;
  kind: string;
  metadata?: Record<string, unknown>;
  spec: Record<string, unknown>;
}
type InvalidCase = Case & { field: string; message: string };
type ValidCase = Case & { expect: Record<string, unknown> };

const corpus = <T>(file: string): T[] =>
  parse(readFileSync(join(REPO_ROOT, "test/admission/corpus", file), "utf8"));
const invalid = corpus<InvalidCase>("pools-invalid.yaml");
const valid = corpus<ValidCase>("pools-valid.yaml");
const PLURAL: Record<string, string> = {
  [TEMPLATE_KIND]: TEMPLATE_PLURAL,
  [POOL_KIND]: POOL_PLURAL,
  [CLAIM_KIND]: CLAIM_PLURAL,
};

const kc = kubeConfig();
const objects = kc.makeApiClient(k8s.CustomObjectsApi);
let ns: Awaited<ReturnType<typeof testNamespace>>;
let counter = 0;

beforeAll(async () => {
  ns = await testNamespace(kc, "admission-pools");
});
afterAll(async () => {
  await ns?.delete();
});

const kubectl = (...args: string[]) =>
  execFileSync(
    join(inject("k8sBinDir"), "kubectl"),
    ["--kubeconfig", inject("kubeconfigPath"), ...args],
    { encoding: "utf8" },
  );

function create(c: Case) {
  const name = `case-${counter++}`;
  const body = {
    apiVersion: API_VERSION,
    kind: c.kind,
    metadata: { name, ...c.metadata },
    spec: c.spec,
  };
  const plural = PLURAL[c.kind]!;
  return {
    name,
    plural,
    done: objects.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: ns.name,
      plural,
      body,
    }),
  };
}

function causesOf(err: unknown): {
  message: string;
  causes: { field?: string; message?: string }[];
} {
  if (!(err instanceof k8s.ApiException)) throw err;
  expect(err.code).toBe(422);
  const status = typeof err.body === "string" ? JSON.parse(err.body) : err.body;
  return { message: status.message, causes: status.details?.causes ?? [] };
}

const at = (obj: unknown, path: string): unknown =>
  path.split(".").reduce<unknown>((o, k) => (o as Record<string, unknown>)?.[k], obj);

describe("pool admission corpus", () => {
  it("covers every kind", () => {
    for (const kind of Object.keys(PLURAL)) {
      expect(invalid.filter((c) => c.kind === kind).length, kind).toBeGreaterThanOrEqual(2);
      expect(valid.filter((c) => c.kind === kind).length, kind).toBeGreaterThanOrEqual(2);
    }
  });

  it.each(invalid.map((c) => [c.name, c] as const))("rejects: %s", async (_n, c) => {
    const err = await create(c).done.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, "the apiserver accepted it").toBeDefined();
    const { message, causes } = causesOf(err);
    const match = causes.find((cause) => cause.field === c.field);
    expect(match, `no cause for ${c.field} in: ${message}`).toBeDefined();
    expect(`${match?.message}`).toContain(c.message);
  });

  it.each(valid.map((c) => [c.name, c] as const))("accepts: %s", async (_n, c) => {
    const { name, plural, done } = create(c);
    await done;
    const stored = await objects.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: ns.name,
      plural,
      name,
    });
    for (const [path, value] of Object.entries(c.expect))
      expect(at(stored, path), path).toEqual(value);
  });
});

describe("claims", () => {
  it("keep their template and pool references", async () => {
    const { name, done } = create({
      name: "immutable",
      kind: CLAIM_KIND,
      spec: { templateRef: { name: "a" }, poolRef: { name: "p" } },
    });
    await done;
    for (const patch of [
      { spec: { templateRef: { name: "b" } } },
      { spec: { poolRef: { name: "q" } } },
      { spec: { poolRef: null } },
    ]) {
      const err = await objects
        .patchNamespacedCustomObject(
          {
            group: GROUP,
            version: VERSION,
            namespace: ns.name,
            plural: CLAIM_PLURAL,
            name,
            body: patch,
          },
          k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
        )
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err, JSON.stringify(patch)).toBeDefined();
      expect(causesOf(err).message).toContain("templateRef and poolRef are immutable");
    }
    // The lifetime may be renewed.
    await objects.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        namespace: ns.name,
        plural: CLAIM_PLURAL,
        name,
        body: { spec: { lifetime: { ttlSeconds: 60 } } },
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
  });
});

describe("warm pools through kubectl", () => {
  it("scale through the scale subresource and print their columns", async () => {
    const { name, done } = create({
      name: "scale",
      kind: POOL_KIND,
      spec: { templateRef: { name: "py" } },
    });
    await done;
    kubectl("-n", ns.name, "scale", `sandboxwarmpool/${name}`, "--replicas=7");
    const stored = await objects.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: ns.name,
      plural: POOL_PLURAL,
      name,
    });
    expect(at(stored, "spec.replicas")).toBe(7);
    const out = kubectl("-n", ns.name, "get", "swp", name);
    expect(out.split("\n")[0]).toMatch(
      /NAME\s+TEMPLATE\s+DESIRED\s+READY\s+TOTAL\s+CLAIMED\s+REFILLS\s+AGE/,
    );
    expect(out).toMatch(new RegExp(`${name}\\s+py\\s+7`));
    expect(kubectl("-n", ns.name, "get", "sbxc").length).toBeGreaterThan(0);
  });

  it("explain every kind", () => {
    // kubectl wraps descriptions; compare words, not lines.
    const explain = (path: string) => kubectl("explain", path).replace(/\s+/g, " ");
    expect(explain("sandboxwarmpool.spec.replicas")).toContain("scale subresource");
    expect(explain("sandboxclaim.spec.egress")).toContain("reaches a warm sandbox live");
    expect(explain("sandboxtemplate.spec.network.egress")).toContain("Outbound traffic policy");
    expect(explain("sandboxclaim.status.source")).toContain("Warming");
  });
});
