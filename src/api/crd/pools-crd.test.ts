import { describe, expect, it } from "vitest";
import { poolKinds } from "./pools-crd.js";
import type { JSONSchema } from "./structural.js";

function walk(node: JSONSchema, path: string, visit: (n: JSONSchema, p: string) => void): void {
  visit(node, path);
  for (const [k, v] of Object.entries(node.properties ?? {})) walk(v, `${path}.${k}`, visit);
  if (node.items) walk(node.items, `${path}[]`, visit);
  const extra = node.additionalProperties;
  if (extra && typeof extra === "object") walk(extra as JSONSchema, `${path}{}`, visit);
}

describe.each(poolKinds.map((k) => [k.kind, k] as const))("%s CRD schema", (_kind, k) => {
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
      if (!n["x-kubernetes-int-or-string"]) expect(n.type, p).toBeDefined();
    }
  });
});
