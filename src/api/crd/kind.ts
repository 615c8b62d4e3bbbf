// One CustomResourceDefinition from the parts that differ between kinds: every
// kind the operator serves is namespaced, in one group and version, with a spec,
// usually a status, and documented printer columns.
import type { z } from "zod";
import { GROUP, SANDBOX_CATEGORIES, VERSION } from "../group.js";
import { type JSONSchema, toStructural } from "./structural.js";

export interface Kind {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  description: string;
  name?: JSONSchema;
  spec: JSONSchema;
  status?: JSONSchema;
  subresources: Record<string, unknown>;
  printerColumns: Array<Record<string, string>>;
}

/** A spec from its zod schema, with the text `kubectl explain <kind>.spec` shows. */
export const specOf = (schema: z.ZodType, description: string): JSONSchema => ({
  ...toStructural(schema),
  description,
});

/** A status from its zod schema; only the controller writes it (status subresource). */
export const statusOf = (schema: z.ZodType): JSONSchema => ({
  ...toStructural(schema),
  description: "What the operator observed; written by the controller only.",
});

export const age = { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" };
export const condition = (type: string, name = type) => ({
  name,
  type: "string",
  jsonPath: `.status.conditions[?(@.type=="${type}")].status`,
  description: `Status of the ${type} condition`,
});

function openAPISchema(k: Kind): JSONSchema {
  return {
    type: "object",
    description: k.description,
    required: ["spec"],
    properties: {
      apiVersion: {
        type: "string",
        description: "Versioned schema of this representation of an object.",
      },
      kind: { type: "string", description: "REST resource this object represents." },
      metadata: { type: "object", ...(k.name ? { properties: { name: k.name } } : {}) },
      spec: k.spec,
      ...(k.status ? { status: k.status } : {}),
    },
  };
}

export function crdOf(k: Kind) {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: `${k.plural}.${GROUP}`,
      labels: { "app.kubernetes.io/part-of": "sandbox-operator" },
    },
    spec: {
      group: GROUP,
      scope: "Namespaced",
      names: {
        kind: k.kind,
        listKind: `${k.kind}List`,
        plural: k.plural,
        singular: k.singular,
        shortNames: k.shortNames,
        categories: SANDBOX_CATEGORIES,
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: k.subresources,
          additionalPrinterColumns: k.printerColumns,
          schema: { openAPIV3Schema: openAPISchema(k) },
        },
      ],
    },
  };
}
