// The CustomResourceDefinitions of templates, warm pools and claims, assembled
// from the zod schemas in ../pools.ts like the Sandbox's.
import {
  CLAIM_KIND,
  CLAIM_PLURAL,
  CLAIM_SHORT_NAMES,
  CLAIM_SINGULAR,
  POOL_KIND,
  POOL_PLURAL,
  POOL_SHORT_NAMES,
  POOL_SINGULAR,
  TEMPLATE_KIND,
  TEMPLATE_PLURAL,
  TEMPLATE_SHORT_NAMES,
  TEMPLATE_SINGULAR,
} from "../group.js";
import {
  CLAIM_NAME_MAX_LENGTH,
  CLAIM_NAME_PATTERN,
  ClaimSpecSchema,
  ClaimStatusSchema,
  POOL_NAME_MAX_LENGTH,
  PoolSpecSchema,
  PoolStatusSchema,
} from "../pools.js";
import { SandboxSpecSchema } from "../sandbox-spec.js";
import { age, condition, crdOf, type Kind, specOf, statusOf } from "./kind.js";

export const templateKind: Kind = {
  kind: TEMPLATE_KIND,
  plural: TEMPLATE_PLURAL,
  singular: TEMPLATE_SINGULAR,
  shortNames: TEMPLATE_SHORT_NAMES,
  description:
    "A SandboxTemplate is a reusable Sandbox spec: warm pools keep sandboxes of it ready, and claims ask for one.",
  spec: specOf(
    SandboxSpecSchema,
    "The spec of every sandbox made from this template: the same fields as a Sandbox's spec.",
  ),
  subresources: {},
  printerColumns: [
    { name: "Image", type: "string", jsonPath: ".spec.image", description: "Image" },
    { name: "Backend", type: "string", jsonPath: ".spec.backend", description: "Backend" },
    age,
  ],
};

export const poolKind: Kind = {
  kind: POOL_KIND,
  plural: POOL_PLURAL,
  singular: POOL_SINGULAR,
  shortNames: POOL_SHORT_NAMES,
  description:
    "A SandboxWarmPool keeps a number of sandboxes of a template started and ready, without egress, so that a claim gets one in a fraction of a second.",
  name: { type: "string", maxLength: POOL_NAME_MAX_LENGTH, pattern: CLAIM_NAME_PATTERN },
  spec: specOf(
    PoolSpecSchema,
    "Which template, how many ready sandboxes, how fast to refill and to roll.",
  ),
  status: statusOf(PoolStatusSchema),
  subresources: {
    status: {},
    scale: {
      specReplicasPath: ".spec.replicas",
      statusReplicasPath: ".status.replicas",
      labelSelectorPath: ".status.selector",
    },
  },
  printerColumns: [
    {
      name: "Template",
      type: "string",
      jsonPath: ".spec.templateRef.name",
      description: "Template",
    },
    { name: "Desired", type: "integer", jsonPath: ".spec.replicas", description: "Desired ready" },
    { name: "Ready", type: "integer", jsonPath: ".status.readyReplicas", description: "Ready" },
    { name: "Total", type: "integer", jsonPath: ".status.replicas", description: "Unclaimed" },
    { name: "Claimed", type: "integer", jsonPath: ".status.claimed", description: "Bound now" },
    { name: "Refills", type: "integer", jsonPath: ".status.refills", description: "Created" },
    age,
  ],
};

export const claimKind: Kind = {
  kind: CLAIM_KIND,
  plural: CLAIM_PLURAL,
  singular: CLAIM_SINGULAR,
  shortNames: CLAIM_SHORT_NAMES,
  description:
    "A SandboxClaim asks for a sandbox of a template, from a warm pool when one is ready and by a cold start otherwise, with its own egress policy, lifetime, labels and env. Deleting the claim deletes its sandbox.",
  name: { type: "string", maxLength: CLAIM_NAME_MAX_LENGTH, pattern: CLAIM_NAME_PATTERN },
  spec: specOf(ClaimSpecSchema, "The template, optionally the pool, and this claim's overrides."),
  status: statusOf(ClaimStatusSchema),
  subresources: { status: {} },
  printerColumns: [
    { name: "Phase", type: "string", jsonPath: ".status.phase", description: "Phase" },
    {
      name: "Sandbox",
      type: "string",
      jsonPath: ".status.sandboxName",
      description: "Bound sandbox",
    },
    { name: "Source", type: "string", jsonPath: ".status.source", description: "Warm or cold" },
    condition("Ready"),
    {
      name: "Ms",
      type: "integer",
      jsonPath: ".status.readyMilliseconds",
      description: "Claim to Ready, milliseconds",
    },
    age,
  ],
};

export const templateCRD = () => crdOf(templateKind);
export const poolCRD = () => crdOf(poolKind);
export const claimCRD = () => crdOf(claimKind);
export const poolKinds = [templateKind, poolKind, claimKind];
