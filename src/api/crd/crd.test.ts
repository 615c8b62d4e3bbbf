import { describe, expect, it } from "vitest";
import { sandboxOpenAPISchema } from "./crd.js";
import type { JSONSchema } from "./structural.js";

/** Every node of the schema with its path, the way `kubectl explain` walks it. */
function walk(node: JSONSchema, path: string, visit: (n: JSONSchema, p: string) => void): void {
  visit(node, path);
  for (const [k, v] of Object.entries(node.properties ?? {})) walk(v, `${path}.${k}`, visit);
  if (node.items) walk(node.items, `${path}[]`, visit);
}

const schema = sandboxOpenAPISchema();
const nodes: [string, JSONSchema][] = [];
for (const part of ["spec", "status"] as const) {
  walk(schema.properties![part]!, part, (n, p) => nodes.push([p, n]));
}

describe("Sandbox CRD schema", () => {
  it("describes every field", () => {
    const undocumented = nodes
      .filter(([p, n]) => !p.endsWith("[]") && !n.description)
      .map(([p]) => p);
    expect(undocumented).toEqual([]);
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
      expect(n.additionalProperties, p).toBeUndefined();
      expect(n.$schema, p).toBeUndefined();
      if (!n["x-kubernetes-int-or-string"]) expect(n.type, p).toBeDefined();
    }
  });

  it("gives integers explicit formats", () => {
    for (const [p, n] of nodes.filter(([, n]) => n.type === "integer")) {
      expect(["int32", "int64"], p).toContain(n.format);
    }
  });

  it("bounds the name so it can name a Pod and a Service", () => {
    const name = (schema.properties!.metadata as JSONSchema).properties!.name!;
    expect(name.maxLength).toBe(63);
  });
});
