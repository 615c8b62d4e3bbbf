// The SandboxSnapshot CustomResourceDefinition, assembled from ../snapshot.ts.
import {
  SNAPSHOT_KIND,
  SNAPSHOT_PLURAL,
  SNAPSHOT_SHORT_NAMES,
  SNAPSHOT_SINGULAR,
} from "../group.js";
import {
  SNAPSHOT_NAME_MAX_LENGTH,
  SNAPSHOT_NAME_PATTERN,
  SnapshotSpecSchema,
  SnapshotStatusSchema,
} from "../snapshot.js";
import { age, crdOf, type Kind, specOf, statusOf } from "./kind.js";

export const snapshotKind: Kind = {
  kind: SNAPSHOT_KIND,
  plural: SNAPSHOT_PLURAL,
  singular: SNAPSHOT_SINGULAR,
  shortNames: SNAPSHOT_SHORT_NAMES,
  description:
    "A SandboxSnapshot is a point-in-time copy of a Sandbox's persistent workspace; a new Sandbox starts from it with spec.workspace.fromSnapshot. Deleting it deletes the copy.",
  name: { type: "string", maxLength: SNAPSHOT_NAME_MAX_LENGTH, pattern: SNAPSHOT_NAME_PATTERN },
  spec: specOf(SnapshotSpecSchema, "The Sandbox whose workspace is copied. Immutable."),
  status: statusOf(SnapshotStatusSchema),
  subresources: { status: {} },
  printerColumns: [
    {
      name: "Sandbox",
      type: "string",
      jsonPath: ".spec.source.sandboxName",
      description: "Source sandbox",
    },
    { name: "Phase", type: "string", jsonPath: ".status.phase", description: "Phase" },
    { name: "Size", type: "integer", jsonPath: ".status.sizeBytes", description: "Bytes" },
    { name: "Checksum", type: "string", jsonPath: ".status.checksum", description: "Digest" },
    age,
  ],
};

export const snapshotCRD = () => crdOf(snapshotKind);
