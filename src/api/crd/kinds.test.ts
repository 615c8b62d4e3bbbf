import { describe, expect, it } from "vitest";
import { poolKinds } from "./pools-crd.js";
import { sandboxKind } from "./sandbox-crd.js";
import { snapshotKind } from "./snapshot-crd.js";
import type { JSONSchema } from "./structural.js";

/** Every node of a schema with its path, the way `kubectl explain` walks it. */
function walk(node: JSONSchema, path: string, visit: (n: JSONSchema, p: string) => void): void {
  visit(node, path);
  for (const [k, v] of Object.entries(node.properties ?? {})) walk(v, `${path}.${k}`, visit);
  if (node.items) walk(node.items, `${path}[]`, visit);
  const values = node.additionalProperties;
  if (values && typeof values === "object") walk(values as JSONSchema, `${path}{}`, visit);
}

const kinds = [sandboxKind, ...poolKinds, snapshotKind];

// The conventions every kind the operator serves keeps, so that `kubectl explain`
// documents each field and the apiserver bounds what it stores.
describe.each(kinds.map((k) => [k.kind, k] as const))("%s CRD schema", (_kind, k) => {
  const nodes: [string, JSONSchema][] = [];
  walk(k.spec, "spec", (n, p) => nodes.push([p, n]));
  if (k.status) walk(k.status, "status", (n, p) => nodes.push([p, n]));

  it("describes every field", () => {
    expect(
      nodes
        .filter(([p, n]) => !p.endsWith("[]") && !p.endsWith("{}") && !n.description)
        .map(([p]) => p),
    ).toEqual([]);
  });

  it("bounds every string and list", () => {
    const unbounded = nodes
      .filter(
        ([, n]) =>
          (n.type === "string" &&
            n.maxLength === undefined &&
            n.format !== "date-time" &&
            !n.enum) ||
          (n.type === "array" && n.maxItems === undefined),
      )
      .map(([p]) => p);
    expect(unbounded).toEqual([]);
  });

  it("uses only structural constructs", () => {
    for (const [p, n] of nodes) {
      if (n.anyOf) expect(n["x-kubernetes-int-or-string"], p).toBe(true);
      expect(n.propertyNames, p).toBeUndefined();
      expect(n.$schema, p).toBeUndefined();
      // A map has a schema for its values; `true` would store anything.
      expect(n.additionalProperties === true, p).toBe(false);
      if (!n["x-kubernetes-int-or-string"]) expect(n.type, p).toBeDefined();
    }
  });

  it("gives integers explicit formats", () => {
    for (const [p, n] of nodes.filter(([, n]) => n.type === "integer")) {
      expect(["int32", "int64"], p).toContain(n.format);
    }
  });
});

describe("names", () => {
  it("bounds a Sandbox's name so it can name its Pod and Service", () => {
    expect(sandboxKind.name?.maxLength).toBe(63);
  });

  it("bounds the names of the kinds whose names become label values", () => {
    for (const k of [...poolKinds, snapshotKind].filter((k) => k.name)) {
      expect(k.name?.maxLength, k.kind).toBeLessThanOrEqual(63);
    }
  });
});
