// Names and labels of everything the docker backend creates. Names are derived
// from the Sandbox (namespace, name, UID prefix), so a second controller or a
// restart finds what exists instead of creating a duplicate; labels carry the
// full identity, which is what orphan collection and observation trust.
import { GROUP } from "../../api/group.js";
import { Labels, MANAGED_BY } from "../../api/labels.js";
import type { Sandbox } from "../../api/sandbox.js";

export const DockerLabels = {
  managedBy: Labels.managedBy,
  sandbox: Labels.sandbox,
  sandboxUid: Labels.sandboxUid,
  namespace: `${GROUP}/namespace`,
  generation: `${GROUP}/generation`,
  /** What the object is to its sandbox: see Role. */
  role: `${GROUP}/role`,
  /** Hash of the create options the container was built from: a different hash means rebuild. */
  specHash: `${GROUP}/spec-hash`,
  /** Which operator installation owns it: several clusters may share one Docker host. */
  owner: `${GROUP}/owner`,
  /** On a persistent workspace volume: its retention policy, Delete or Retain, fixed at creation. */
  retention: `${GROUP}/retention`,
  /** On a snapshot volume: the SandboxSnapshot's name and UID. */
  snapshot: `${GROUP}/snapshot`,
  snapshotUid: `${GROUP}/snapshot-uid`,
} as const;

export const Role = {
  sidecar: "egress",
  workload: "workload",
  network: "network",
  workspace: "workspace",
} as const;
export type Role = (typeof Role)[keyof typeof Role];

export interface SandboxIdentity {
  namespace: string;
  name: string;
  uid: string;
}

export function identityOf(sandbox: Sandbox): SandboxIdentity {
  const { namespace, name, uid } = sandbox.metadata;
  return { namespace: namespace!, name: name!, uid: uid! };
}

/**
 * `sbx.<namespace>.<name>.<uid prefix>[.<role>]`: neither a namespace nor a
 * Sandbox name contains a dot, so the parts never run into each other, and the
 * UID prefix keeps a recreated Sandbox of the same name apart from the last one.
 */
export function resourceName(id: SandboxIdentity, role: Role): string {
  const base = `sbx.${id.namespace}.${id.name}.${id.uid.slice(0, 8)}`;
  return role === Role.workload ? base : `${base}.${role}`;
}

export function resourceLabels(
  id: SandboxIdentity,
  role: Role,
  owner: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    [DockerLabels.managedBy]: MANAGED_BY,
    [DockerLabels.owner]: owner,
    [DockerLabels.namespace]: id.namespace,
    [DockerLabels.sandbox]: id.name,
    [DockerLabels.sandboxUid]: id.uid,
    [DockerLabels.role]: role,
    ...extra,
  };
}

/** Docker API filter selecting everything this operator installation created. */
export function ownedFilter(owner: string, more: string[] = []): { label: string[] } {
  return {
    label: [`${DockerLabels.managedBy}=${MANAGED_BY}`, `${DockerLabels.owner}=${owner}`, ...more],
  };
}

/** The "namespace/name" key of the sandbox a labelled object belongs to. */
export function sandboxKeyOf(labels: Record<string, string> | undefined): string | undefined {
  const ns = labels?.[DockerLabels.namespace];
  const name = labels?.[DockerLabels.sandbox];
  return ns && name ? `${ns}/${name}` : undefined;
}
