// The Sandbox CustomResourceDefinition, assembled from the zod schemas.
import {
  GROUP,
  SANDBOX_CATEGORIES,
  SANDBOX_CRD_NAME,
  SANDBOX_KIND,
  SANDBOX_PLURAL,
  SANDBOX_SHORT_NAMES,
  SANDBOX_SINGULAR,
  VERSION,
} from "../group.js";
import { SANDBOX_NAME_MAX_LENGTH, SANDBOX_NAME_PATTERN } from "../sandbox.js";
import { SandboxSpecSchema } from "../sandbox-spec.js";
import { SandboxStatusSchema } from "../sandbox-status.js";
import { type JSONSchema, toStructural } from "./structural.js";

const printerColumns = [
  { name: "Phase", type: "string", jsonPath: ".status.phase", description: "Lifecycle phase" },
  { name: "Backend", type: "string", jsonPath: ".status.backend", description: "Backend" },
  {
    name: "Ready",
    type: "string",
    jsonPath: '.status.conditions[?(@.type=="Ready")].status',
    description: "Whether the workload is ready",
  },
  {
    // A string, not a date: kubectl renders dates as an age, and a future time has none.
    name: "Expires",
    type: "string",
    jsonPath: ".status.expiresAt",
    description: "When the lifetime runs out",
  },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
];

export function sandboxOpenAPISchema(): JSONSchema {
  return {
    type: "object",
    description:
      "A Sandbox runs untrusted code (an AI agent, a user script, a CI job) in an isolated workload with a fail-closed egress policy and a bounded lifetime.",
    required: ["spec"],
    properties: {
      apiVersion: {
        type: "string",
        description: "Versioned schema of this representation of an object.",
      },
      kind: { type: "string", description: "REST resource this object represents." },
      metadata: {
        type: "object",
        properties: {
          name: {
            type: "string",
            maxLength: SANDBOX_NAME_MAX_LENGTH,
            pattern: SANDBOX_NAME_PATTERN,
          },
        },
      },
      spec: {
        ...toStructural(SandboxSpecSchema),
        description: "What to run, with which resources, network policy and lifetime.",
      },
      status: {
        ...toStructural(SandboxStatusSchema),
        description: "What the operator observed; written by the controller only.",
      },
    },
  };
}

export function sandboxCRD() {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: SANDBOX_CRD_NAME,
      labels: { "app.kubernetes.io/part-of": "sandbox-operator" },
    },
    spec: {
      group: GROUP,
      scope: "Namespaced",
      names: {
        kind: SANDBOX_KIND,
        listKind: `${SANDBOX_KIND}List`,
        plural: SANDBOX_PLURAL,
        singular: SANDBOX_SINGULAR,
        shortNames: SANDBOX_SHORT_NAMES,
        categories: SANDBOX_CATEGORIES,
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: printerColumns,
          schema: { openAPIV3Schema: sandboxOpenAPISchema() },
        },
      ],
    },
  };
}
