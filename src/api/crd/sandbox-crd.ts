// The Sandbox CustomResourceDefinition, assembled from the zod schemas.
import { SANDBOX_KIND, SANDBOX_PLURAL, SANDBOX_SHORT_NAMES, SANDBOX_SINGULAR } from "../group.js";
import { SANDBOX_NAME_MAX_LENGTH, SANDBOX_NAME_PATTERN } from "../sandbox.js";
import { SandboxSpecSchema } from "../sandbox-spec.js";
import { SandboxStatusSchema } from "../sandbox-status.js";
import { age, crdOf, type Kind, specOf, statusOf } from "./kind.js";

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
  age,
];

export const sandboxKind: Kind = {
  kind: SANDBOX_KIND,
  plural: SANDBOX_PLURAL,
  singular: SANDBOX_SINGULAR,
  shortNames: SANDBOX_SHORT_NAMES,
  description:
    "A Sandbox runs untrusted code (an AI agent, a user script, a CI job) in an isolated workload with a fail-closed egress policy and a bounded lifetime.",
  // A Sandbox's name also names its Pod and Service.
  name: { type: "string", maxLength: SANDBOX_NAME_MAX_LENGTH, pattern: SANDBOX_NAME_PATTERN },
  spec: specOf(
    SandboxSpecSchema,
    "What to run, with which resources, network policy and lifetime.",
  ),
  status: statusOf(SandboxStatusSchema),
  subresources: { status: {} },
  printerColumns,
};

export const sandboxCRD = () => crdOf(sandboxKind);
