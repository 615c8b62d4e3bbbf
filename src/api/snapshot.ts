// SandboxSnapshot: a point-in-time copy of a Sandbox's workspace, from which a
// later Sandbox's workspace can start (spec.workspace.fromSnapshot).
//
// Why a resource and not a field of the Sandbox: a snapshot outlives the
// sandbox it was taken from (that is its point), a sandbox can have many, a
// restore names one, and each has its own progress and record (size,
// checksum, the backend's handle). That is a lifecycle of its own, like
// VolumeSnapshot beside PersistentVolumeClaim; it also lets an admin grant
// "create sandboxsnapshots" separately from "patch sandboxes". See
// docs/workspaces.md.
import type { V1ObjectMeta } from "@kubernetes/client-node";
import { z } from "zod";
import { API_VERSION, SNAPSHOT_KIND } from "./group.js";
import { BACKENDS } from "./sandbox-spec.js";
import { ConditionSchema } from "./sandbox-status.js";
import {
  boundedString,
  cel,
  DNS_1035_LABEL_PATTERN,
  dateTime,
  doc,
  generation,
  listType,
  regex,
} from "./schema-helpers.js";

export const SNAPSHOT_PHASES = ["Pending", "Ready", "Failed"] as const;
export type SnapshotPhase = (typeof SNAPSHOT_PHASES)[number];

/** "sha256:" and 64 hex digits. */
export const CHECKSUM_PATTERN = "^sha256:[0-9a-f]{64}$";

export const SnapshotSpecSchema = cel(
  z.object({
    source: doc(
      z.object({
        sandboxName: doc(
          boundedString(63, 1).regex(regex(DNS_1035_LABEL_PATTERN)),
          "Name of the Sandbox (same namespace) whose workspace is copied. It must have spec.workspace.",
        ),
      }),
      "What to snapshot.",
    ),
  }),
  { rule: "self == oldSelf", message: "a snapshot's spec is immutable" },
);
export type SnapshotSpec = z.output<typeof SnapshotSpecSchema>;

export const SnapshotStatusSchema = z.object({
  phase: doc(
    z.enum(SNAPSHOT_PHASES).optional(),
    "Pending (being taken), Ready (usable by spec.workspace.fromSnapshot) or Failed (see reason and message; not retried).",
  ),
  backend: doc(z.enum(BACKENDS).optional(), "Backend that holds the snapshot."),
  sourceWorkspace: doc(
    boundedString(253).optional(),
    "Name of the workspace (PVC or named volume) that was copied.",
  ),
  sourceSandboxUid: doc(
    boundedString(128).optional(),
    "UID of the Sandbox the snapshot was taken from (a later Sandbox of the same name is another one).",
  ),
  handle: doc(
    boundedString(253).optional(),
    "The backend's name for the copy: the snapshot volume (docker backend) or the VolumeSnapshot (pod backend).",
  ),
  sizeBytes: doc(
    z.int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    "Size of the copy in bytes (the tar archive on docker; the restore size the CSI driver reports on the pod backend).",
  ),
  checksum: doc(
    boundedString(71).regex(regex(CHECKSUM_PATTERN)).optional(),
    'Digest of the copy ("sha256:..."), where the backend can compute one (docker: of the tar archive, checked again on every restore).',
  ),
  readyAt: doc(dateTime().optional(), "When the snapshot became ready."),
  reason: doc(boundedString(1024).optional(), "CamelCase reason for the phase."),
  message: doc(boundedString(32768).optional(), "Human-readable detail on the phase."),
  conditions: doc(listType(z.array(ConditionSchema).max(8).optional(), "map", ["type"]), "Ready."),
  observedGeneration: doc(generation(), "The .metadata.generation this status reflects."),
});
export type SnapshotStatus = z.output<typeof SnapshotStatusSchema>;

export const SandboxSnapshotSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(SNAPSHOT_KIND),
  metadata: z.custom<V1ObjectMeta>((m) => typeof m === "object" && m !== null),
  spec: SnapshotSpecSchema,
  status: SnapshotStatusSchema.optional(),
});
export type SandboxSnapshot = z.output<typeof SandboxSnapshotSchema>;

/** Snapshot names are labels on docker volumes and in backend names: a DNS-1035 label. */
export const SNAPSHOT_NAME_MAX_LENGTH = 63;
export const SNAPSHOT_NAME_PATTERN = DNS_1035_LABEL_PATTERN;
