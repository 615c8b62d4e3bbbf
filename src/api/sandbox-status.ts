// The Sandbox status: what the operator observed. Written only by the controller,
// through the status subresource.
import { z } from "zod";
import { BACKENDS } from "./sandbox-spec.js";
import { boundedString, dateTime, doc, generation, listType } from "./schema-helpers.js";

export const PHASES = [
  "Pending",
  "Running",
  "Succeeded",
  "Failed",
  "Expired",
  "Suspended",
] as const;
export type Phase = (typeof PHASES)[number];

const timestamp = (description: string) => doc(dateTime().optional(), description);

/** metav1.Condition, with the same bounds and patterns as upstream. */
export const ConditionSchema = z.object({
  type: doc(
    boundedString(316, 1).regex(
      /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/,
    ),
    "Type of condition in CamelCase, e.g. Ready.",
  ),
  status: doc(z.enum(["True", "False", "Unknown"]), "Status of the condition."),
  observedGeneration: doc(generation(), "The .metadata.generation the condition was set for."),
  lastTransitionTime: doc(dateTime(), "When the condition last changed status."),
  reason: doc(
    boundedString(1024, 1).regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/),
    "Machine-readable CamelCase reason for the last transition.",
  ),
  message: doc(boundedString(32768), "Human-readable details of the last transition."),
});
export type Condition = z.output<typeof ConditionSchema>;

const EndpointSchema = z.object({
  name: doc(boundedString(15, 1), "Name of the port in spec.ports."),
  port: doc(z.int().min(1).max(65535), "Port on host to connect to."),
  host: doc(boundedString(253), "Host or IP to connect to."),
  url: doc(boundedString(512).optional(), "Convenience URL (http://host:port)."),
});
export type Endpoint = z.output<typeof EndpointSchema>;

export const WorkspaceStatusSchema = z.object({
  name: doc(
    boundedString(253, 1),
    "Name of the workspace: the PVC (pod backend) or the named volume (docker backend). A later Sandbox mounts it through spec.workspace.existing.name.",
  ),
  retentionPolicy: doc(
    z.enum(["Delete", "Retain"]).optional(),
    "What happens to it when this Sandbox is deleted: Delete or Retain (always Retain for a workspace mounted through existing).",
  ),
  fromSnapshot: doc(
    boundedString(253).optional(),
    "The SandboxSnapshot the workspace was restored from, when it was.",
  ),
});
export type WorkspaceStatus = z.output<typeof WorkspaceStatusSchema>;

export const SandboxStatusSchema = z.object({
  phase: doc(
    z.enum(PHASES).optional(),
    "Lifecycle phase: Pending, Running, Succeeded, Failed, Expired (kept after expiry with onExpire: Retain), or Suspended (spec.suspended: the workload's compute is released, the workspace kept).",
  ),
  conditions: doc(
    listType(z.array(ConditionSchema).max(16).optional(), "map", ["type"]),
    "Latest observations: Ready, EgressReady, Stalled, Expired, Invalid, Suspended.",
  ),
  observedGeneration: doc(generation(), "The .metadata.generation this status reflects."),
  backend: doc(z.enum(BACKENDS).optional(), "Backend the sandbox runs on."),
  podName: doc(boundedString(253).optional(), "Pod backend: name of the workload Pod."),
  containerId: doc(boundedString(128).optional(), "Docker backend: ID of the workload container."),
  ip: doc(boundedString(64).optional(), "IP address of the sandbox."),
  endpoints: doc(
    listType(z.array(EndpointSchema).max(16).optional(), "map", ["name"]),
    "Where each declared port can be reached.",
  ),
  startedAt: timestamp("When the workload started."),
  expiresAt: timestamp("When the sandbox's lifetime runs out."),
  finishedAt: timestamp("When the workload finished or the sandbox expired."),
  exitCode: doc(
    z.int().min(-2147483648).max(2147483647).optional(),
    "Exit code of the workload, once it has terminated.",
  ),
  reason: doc(
    boundedString(1024).optional(),
    "CamelCase reason for the current phase, e.g. OOMKilled.",
  ),
  message: doc(boundedString(32768).optional(), "Human-readable detail on the current phase."),
  suspendedAt: timestamp(
    "When the sandbox was last suspended (its workload removed); cleared when it runs again.",
  ),
  workspace: doc(
    WorkspaceStatusSchema.optional(),
    "The persistent workspace, once the backend has made or found it.",
  ),
});
export type SandboxStatus = z.output<typeof SandboxStatusSchema>;
