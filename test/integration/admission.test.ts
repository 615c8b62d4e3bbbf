// The admission corpus against the real apiserver: every invalid Sandbox is
// rejected naming its field, every valid one is accepted and reads back with
// defaults applied.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parse } from "yaml";
import { API_VERSION, GROUP, SANDBOX_KIND, SANDBOX_PLURAL, VERSION } from "../../src/api/group.js";
import { LIMITS } from "../../src/api/sandbox-spec.js";
import { apiGet, kubeConfig, testNamespace } from "../support/cluster.js";
import { REPO_ROOT } from "../support/paths.js";

interface Case {
  name: string;
  metadata?: Record<string, unknown>;
  spec: Record<string, unknown> | null;
}
interface InvalidCase extends Case {
  field: string;
  message: string;
}
interface ValidCase extends Case {
  expect: Record<string, unknown>;
}

const corpus = <T>(file: string): T[] =>
  parse(readFileSync(join(REPO_ROOT, "test/admission/corpus", file), "utf8"));
const invalid = corpus<InvalidCase>("invalid.yaml");
const valid = corpus<ValidCase>("valid.yaml");

interface StatusCause {
  field?: string;
  message?: string;
}

const kc = kubeConfig();
const objects = kc.makeApiClient(k8s.CustomObjectsApi);
let ns: Awaited<ReturnType<typeof testNamespace>>;
let counter = 0;

beforeAll(async () => {
  ns = await testNamespace(kc, "admission");
});
afterAll(async () => {
  await ns?.delete();
});

function manifest(c: Case): Record<string, unknown> {
  const obj: Record<string, unknown> = {
    apiVersion: API_VERSION,
    kind: SANDBOX_KIND,
    metadata: { name: `case-${counter++}`, ...c.metadata },
  };
  if (c.spec !== null) obj.spec = c.spec;
  return obj;
}

function create(body: Record<string, unknown>) {
  return objects.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns.name,
    plural: SANDBOX_PLURAL,
    body,
  });
}

/** The Status the apiserver answered with, from a rejected request. */
function rejection(err: unknown): { message: string; causes: StatusCause[] } {
  if (!(err instanceof k8s.ApiException)) throw err;
  expect(err.code).toBe(422);
  const status = typeof err.body === "string" ? JSON.parse(err.body) : err.body;
  return { message: status.message, causes: status.details?.causes ?? [] };
}

function at(obj: unknown, path: string): unknown {
  return path.split(".").reduce<unknown>((o, k) => (o as Record<string, unknown>)?.[k], obj);
}

describe("admission corpus", () => {
  it("is large enough to mean something", () => {
    expect(invalid.length).toBeGreaterThanOrEqual(30);
    expect(valid.length).toBeGreaterThanOrEqual(10);
  });

  it.each(invalid.map((c) => [c.name, c] as const))("rejects: %s", async (_name, c) => {
    const err = await create(manifest(c)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, "the apiserver accepted it").toBeDefined();
    const { message, causes } = rejection(err);
    const match = causes.find((cause) => cause.field === c.field);
    expect(match, `no cause for ${c.field} in: ${message}`).toBeDefined();
    expect(`${match?.message}`).toContain(c.message);
  });

  it.each(valid.map((c) => [c.name, c] as const))("accepts: %s", async (_name, c) => {
    const body = manifest(c);
    await create(body);
    const stored = await objects.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: ns.name,
      plural: SANDBOX_PLURAL,
      name: (body.metadata as { name: string }).name,
    });
    for (const [path, value] of Object.entries(c.expect)) {
      expect(at(stored, path), path).toEqual(value);
    }
  });
});

describe("egress rule bounds", () => {
  const rules = (n: number) =>
    Array.from({ length: n }, (_, i) => ({ action: "allow", target: `host-${i}.example.org` }));
  const withRules = (n: number): Case => ({
    name: `${n} rules`,
    spec: { image: "busybox", network: { egress: { rules: rules(n) } } },
  });

  it(`accepts exactly ${LIMITS.egressRules} rules`, async () => {
    await create(manifest(withRules(LIMITS.egressRules)));
  });

  it(`rejects ${LIMITS.egressRules + 1} rules naming the list`, async () => {
    const err = await create(manifest(withRules(LIMITS.egressRules + 1))).catch((e) => e);
    const { causes } = rejection(err);
    expect(causes.find((c) => c.field === "spec.network.egress.rules")?.message).toContain(
      `must have at most ${LIMITS.egressRules} items`,
    );
  });

  it("rejects a 10,000-rule list by its bound", async () => {
    const started = performance.now();
    const err = await create(manifest(withRules(10_000))).catch((e) => e);
    const elapsed = performance.now() - started;
    const { causes } = rejection(err);
    expect(causes.find((c) => c.field === "spec.network.egress.rules")?.message).toContain(
      "Too many: 10000",
    );
    console.log(`10,000-rule Sandbox rejected in ${Math.round(elapsed)} ms`);
  });
});

describe("kubectl explain", () => {
  it("serves every field's description in the OpenAPI v3 document", async () => {
    const res = await apiGet(kc, `/openapi/v3/apis/${GROUP}/${VERSION}`);
    expect(res.status).toBe(200);
    const doc = JSON.parse(res.body) as { components: { schemas: Record<string, unknown> } };
    const sandbox = Object.entries(doc.components.schemas).find(([k]) =>
      k.endsWith(`${GROUP.split(".").reverse().join(".")}.${VERSION}.${SANDBOX_KIND}`),
    )?.[1];
    expect(sandbox, "Sandbox schema in /openapi/v3").toBeDefined();
    const egress = at(sandbox, "properties.spec.properties.network.properties.egress") as {
      description: string;
      properties: Record<string, { description?: string }>;
    };
    expect(egress.description).toContain("Outbound traffic policy");
    for (const [field, schema] of Object.entries(egress.properties)) {
      expect(schema.description, `description of egress.${field}`).toBeTruthy();
    }
  });

  it("prints the descriptions through kubectl", () => {
    const out = execFileSync(
      join(inject("k8sBinDir"), "kubectl"),
      ["--kubeconfig", inject("kubeconfigPath"), "explain", "sandbox.spec.network.egress"],
      { encoding: "utf8" },
    );
    expect(out).toContain("KIND:       Sandbox");
    expect(out).toContain("Outbound traffic policy");
    expect(out).toMatch(/defaultAction\s+<string>/);
    expect(out).toContain("What happens to traffic no rule matches");
    expect(out).toContain("first rule whose target");
  });
});

describe("spec.workspace is immutable", () => {
  const patch = (name: string, spec: Record<string, unknown>) =>
    objects.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        namespace: ns.name,
        plural: SANDBOX_PLURAL,
        name,
        body: { spec },
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );

  it("refuses changing, adding or removing it, naming the field", async () => {
    const body = manifest({
      name: "ws",
      spec: { image: "busybox", workspace: { retentionPolicy: "Delete" } },
    });
    const name = (body.metadata as { name: string }).name;
    await create(body);
    const changed = rejection(
      await patch(name, { workspace: { retentionPolicy: "Retain" } }).catch((e) => e),
    );
    expect(changed.causes.find((c) => c.field === "spec.workspace")?.message).toContain(
      "immutable",
    );
    const removed = rejection(await patch(name, { workspace: null }).catch((e) => e));
    expect(removed.causes.find((c) => c.field === "spec.workspace")?.message).toContain(
      "immutable",
    );
    // Other fields still change.
    await patch(name, { suspended: true });

    const plain = manifest({ name: "plain", spec: { image: "busybox" } });
    await create(plain);
    const added = rejection(
      await patch((plain.metadata as { name: string }).name, { workspace: {} }).catch((e) => e),
    );
    expect(added.causes.find((c) => c.field === "spec.workspace")?.message).toContain("immutable");
  });
});
