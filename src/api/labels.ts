// Labels and annotations the operator puts on what it creates. They are API:
// users select on them (`kubectl get pods -l sandboxing.dev/sandbox=NAME`), and
// the operator finds its objects (and orphans) by them after a restart.
import { GROUP } from "./group.js";

export const MANAGED_BY = "sandbox-operator";

export const Labels = {
  name: "app.kubernetes.io/name",
  instance: "app.kubernetes.io/instance",
  component: "app.kubernetes.io/component",
  managedBy: "app.kubernetes.io/managed-by",
  partOf: "app.kubernetes.io/part-of",
  /** Name of the owning Sandbox. */
  sandbox: `${GROUP}/sandbox`,
  /** UID of the owning Sandbox: an object whose Sandbox has another UID is an orphan. */
  sandboxUid: `${GROUP}/sandbox-uid`,
} as const;

export const Annotations = {
  /** Hash of the desired spec an object was built from; a different hash means rebuild. */
  specHash: `${GROUP}/spec-hash`,
} as const;

/** Selector matching everything this operator manages. */
export const MANAGED_SELECTOR = `${Labels.managedBy}=${MANAGED_BY}`;
