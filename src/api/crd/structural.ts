// Turns zod's JSON Schema output into a Kubernetes structural schema.
//
// zod's converter gets types, bounds, enums, defaults and our metadata right; what
// it cannot know is the Kubernetes dialect: int-or-string has a fixed shape, and
// "unbounded" integers (MIN_SAFE_INTEGER) are better left without a lower bound.
// An upper bound of MAX_SAFE_INTEGER stays: the controller cannot write a larger
// number back exactly, so the apiserver must refuse it (see generation()).
import { z } from "zod";

export type JSONSchema = Record<string, unknown> & {
  type?: string;
  properties?: Record<string, JSONSchema>;
  items?: JSONSchema;
  anyOf?: JSONSchema[];
  required?: string[];
};

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

export function toStructural(schema: z.ZodType): JSONSchema {
  const json = z.toJSONSchema(schema, { io: "input", target: "draft-2020-12" }) as JSONSchema;
  delete json.$schema;
  return normalize(json);
}

function normalize(node: JSONSchema): JSONSchema {
  const out: JSONSchema = { ...node };

  if (out["x-kubernetes-int-or-string"]) {
    const stringBranch = out.anyOf?.find((b) => b.type === "string") ?? {};
    out.anyOf = [{ type: "integer" }, { type: "string" }];
    for (const key of ["pattern", "maxLength"] as const) {
      if (stringBranch[key] !== undefined) out[key] = stringBranch[key];
    }
  } else if (out.anyOf) {
    throw new Error(`unions other than int-or-string are not structural: ${JSON.stringify(node)}`);
  }

  if (out.type === "integer") {
    if (out.minimum === Number.MIN_SAFE_INTEGER) delete out.minimum;
    const min = out.minimum as number | undefined;
    const max = out.maximum as number | undefined;
    out.format =
      min !== undefined && max !== undefined && min >= INT32_MIN && max <= INT32_MAX
        ? "int32"
        : "int64";
  }

  if (out.properties) {
    out.properties = Object.fromEntries(
      Object.entries(out.properties).map(([k, v]) => [k, normalize(v)]),
    );
    // Objects in a CRD are closed by pruning, not by additionalProperties: false,
    // which the apiserver rejects next to properties.
    delete out.additionalProperties;
  }
  if (out.items) out.items = normalize(out.items);
  if (out.additionalProperties && typeof out.additionalProperties === "object") {
    // A map (z.record): its keys' schema is not structural; the value schema is.
    out.additionalProperties = normalize(out.additionalProperties as JSONSchema);
    delete out.propertyNames;
  }
  return out;
}
