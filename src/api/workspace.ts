// State that outlives a sandbox's workload: the persistent workspace and the
// extra read-only mounts (Secrets, ConfigMaps, docker host paths). Part of the
// Sandbox spec (./sandbox-spec.ts); the user-facing doc is docs/workspaces.md.
import { z } from "zod";
import {
  boundedString,
  cel,
  crossFieldRule,
  DNS_SUBDOMAIN_PATTERN,
  doc,
  listType,
  quantity,
  regex,
} from "./schema-helpers.js";

export const RETENTION_POLICIES = ["Delete", "Retain"] as const;
export type RetentionPolicy = (typeof RETENTION_POLICIES)[number];
export const ACCESS_MODES = ["ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany"] as const;

export const DEFAULT_WORKSPACE_SIZE = "1Gi";
export const MAX_MOUNTS = 16;

/**
 * Paths the operator mounts in every sandbox (the agent's directory, the egress
 * sidecar's files, /tmp): a user mount there would hide or replace them.
 */
export const RESERVED_MOUNT_PATHS: readonly string[] = Object.freeze([
  "/",
  "/.sandbox",
  "/tmp",
  "/proc",
  "/sys",
  "/dev",
  "/etc/resolv.conf",
  "/etc/hosts",
  "/etc/hostname",
]);

/**
 * An absolute, normalised path: starts with "/", no "." or ".." segment, no
 * "//", no trailing "/" (except "/" itself), no NUL or ":" (Docker's bind
 * syntax splits on it).
 */
export const ABSOLUTE_PATH_PATTERN = "^/([^/\\x00:]+(/[^/\\x00:]+)*)?$";
const NO_DOT_SEGMENT_CEL = "!self.matches('(^|/)\\\\.\\\\.?(/|$)')";
const noDotSegment = (p: string) => !p.split("/").some((s) => s === "." || s === "..");

function absolutePath(description: string) {
  return doc(
    cel(
      boundedString(4096, 1)
        .regex(regex(ABSOLUTE_PATH_PATTERN), {
          message: 'must be an absolute path without "//", a trailing "/" or ":"',
        })
        .refine(noDotSegment, { message: 'must not contain "." or ".." segments' }),
      { rule: NO_DOT_SEGMENT_CEL, message: 'must not contain "." or ".." segments' },
    ),
    description,
  );
}

/** A path inside the sandbox: absolute, normalised, not one the operator owns. */
export function mountPath(description: string) {
  const reserved = RESERVED_MOUNT_PATHS.map((p) => `'${p}'`).join(", ");
  const message = `must not be one of the paths the operator mounts (${RESERVED_MOUNT_PATHS.join(", ")}) or under /.sandbox`;
  return cel(
    absolutePath(description).refine(
      (p) => !RESERVED_MOUNT_PATHS.includes(p) && !p.startsWith("/.sandbox/"),
      { message },
    ),
    { rule: `!(self in [${reserved}]) && !self.startsWith('/.sandbox/')`, message },
  );
}

const objectName = (description: string) =>
  doc(boundedString(253, 1).regex(regex(DNS_SUBDOMAIN_PATTERN)), description);

// ---- the workspace

const VolumeTemplateSchema = z.object({
  size: doc(
    cel(quantity().default(DEFAULT_WORKSPACE_SIZE), {
      rule: "quantity(string(self)).isGreaterThan(quantity('0'))",
      message: "size must be greater than 0",
    }),
    `Capacity requested for a new workspace, as a Kubernetes quantity ("10Gi"). Defaults to ${DEFAULT_WORKSPACE_SIZE}. Pod backend: the PVC's storage request; docker backend: not enforced (a named volume has no size).`,
  ),
  storageClassName: doc(
    boundedString(253, 1).regex(regex(DNS_SUBDOMAIN_PATTERN)).optional(),
    "Pod backend: StorageClass of the new PVC. Unset: the cluster's default class.",
  ),
  accessModes: doc(
    listType(z.array(z.enum(ACCESS_MODES)).min(1).max(3).optional(), "set"),
    "Pod backend: access modes of the new PVC. Unset: [ReadWriteOnce].",
  ),
});

const ExistingWorkspaceSchema = z.object({
  name: objectName(
    "Name of the workspace to mount: a PVC in the Sandbox's namespace (pod backend), or a named volume this operator created for a Sandbox of the same namespace (docker backend; status.workspace.name of that sandbox).",
  ),
});

const FromSnapshotSchema = z.object({
  name: objectName(
    "Name of a SandboxSnapshot in the Sandbox's namespace. The new workspace starts with its content; the sandbox waits (Ready=False, reason SnapshotNotReady) until the snapshot is ready.",
  ),
});

const WORKSPACE_MOUNT_PATH_DOC =
  "Where the workspace is mounted in the workload. Defaults to spec.workingDir, else /workspace.";

export const WorkspaceSchema = crossFieldRule(
  crossFieldRule(
    z.object({
      mountPath: doc(mountPath(WORKSPACE_MOUNT_PATH_DOC).optional(), WORKSPACE_MOUNT_PATH_DOC),
      retentionPolicy: doc(
        z.enum(RETENTION_POLICIES).optional(),
        "What happens to a workspace this Sandbox created when the Sandbox is deleted: Delete (when unset) removes it with the Sandbox; Retain keeps it, to be mounted by a later Sandbox through workspace.existing. A workspace mounted through existing is never deleted by the Sandbox.",
      ),
      volume: doc(
        VolumeTemplateSchema.optional(),
        "Template for a new workspace (a PVC on the pod backend, a named volume on docker). Used unless existing is set.",
      ),
      existing: doc(
        ExistingWorkspaceSchema.optional(),
        "Mount a workspace that already exists (kept by an earlier Sandbox with retentionPolicy Retain, or made by hand) instead of creating one.",
      ),
      fromSnapshot: doc(
        FromSnapshotSchema.optional(),
        "Start the new workspace from a SandboxSnapshot's content.",
      ),
    }),
    {
      rule: "!(has(self.existing) && (has(self.fromSnapshot) || has(self.volume)))",
      message:
        "existing mounts a workspace as it is: it cannot be combined with volume or fromSnapshot",
      path: ["existing"],
    },
    (w) => !(w.existing && (w.fromSnapshot || w.volume)),
  ),
  {
    rule: "!(has(self.existing) && has(self.retentionPolicy) && self.retentionPolicy == 'Delete')",
    message:
      "a workspace mounted through existing is never deleted by the Sandbox: leave retentionPolicy unset or Retain",
    path: ["retentionPolicy"],
  },
  (w) => !(w.existing && w.retentionPolicy === "Delete"),
);
export type Workspace = z.output<typeof WorkspaceSchema>;

/** How the operator treats a workspace when its Sandbox goes. */
export function retentionOf(w: Workspace): RetentionPolicy {
  return w.existing ? "Retain" : (w.retentionPolicy ?? "Delete");
}

// ---- extra mounts

const SecretSourceSchema = z.object({
  name: objectName("Name of a Secret in the Sandbox's namespace."),
  optional: doc(
    z.boolean().optional(),
    "When true, a missing Secret mounts an empty directory instead of holding the sandbox back.",
  ),
});

const ConfigMapSourceSchema = z.object({
  name: objectName("Name of a ConfigMap in the Sandbox's namespace."),
  optional: doc(
    z.boolean().optional(),
    "When true, a missing ConfigMap mounts an empty directory instead of holding the sandbox back.",
  ),
});

const HostPathSourceSchema = z.object({
  path: absolutePath(
    "Absolute path on the Docker host. It must lie under a prefix of the operator's --docker-allowed-host-paths (after resolving symlinks where the operator can); otherwise nothing is mounted and the Sandbox says so in its Invalid condition (reason HostPathNotAllowed), naming the path.",
  ),
  readOnly: doc(
    z.boolean().optional(),
    'Mount read-only (when unset). false needs an allowlist entry ending in ":rw".',
  ),
});

const MOUNT_SOURCES = ["secret", "configMap", "hostPath"] as const;

export const MountSchema = crossFieldRule(
  z.object({
    mountPath: mountPath("Where the mount appears in the workload (absolute)."),
    secret: doc(
      SecretSourceSchema.optional(),
      "Pod backend: the keys of a Secret as read-only files (mode 0440, group of the workload). The docker backend refuses it (Invalid, reason Unsupported): the operator never reads Secrets.",
    ),
    configMap: doc(
      ConfigMapSourceSchema.optional(),
      "Pod backend: the keys of a ConfigMap as read-only files. The docker backend refuses it (Invalid, reason Unsupported).",
    ),
    hostPath: doc(
      HostPathSourceSchema.optional(),
      "Docker backend: a directory or file of the Docker host, allowed only under --docker-allowed-host-paths. The pod backend refuses it (Invalid, reason Unsupported).",
    ),
  }),
  {
    rule: `[${MOUNT_SOURCES.map((s) => `has(self.${s})`).join(", ")}].filter(x, x).size() == 1`,
    message: "exactly one of secret, configMap or hostPath must be set",
    path: ["mountPath"],
  },
  (m) => MOUNT_SOURCES.filter((s) => m[s] !== undefined).length === 1,
);
export type Mount = z.output<typeof MountSchema>;

export const MountsSchema = doc(
  cel(listType(z.array(MountSchema).max(MAX_MOUNTS).optional(), "atomic"), {
    rule: "self.all(m, self.exists_one(n, n.mountPath == m.mountPath))",
    message: "mount paths must be unique",
  }),
  `Extra mounts, read-only unless said otherwise: Secrets and ConfigMaps (pod backend), host paths (docker backend). At most ${MAX_MOUNTS}.`,
);

// ---- idle timeout

/** A duration as Go and CEL write it: "90s", "30m", "1h30m". */
export const DURATION_PATTERN = "^([0-9]{1,6}(ms|s|m|h))+$";
export const MIN_IDLE_TIMEOUT_SECONDS = 10;
export const MAX_IDLE_TIMEOUT_SECONDS = 366 * 24 * 3600;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds of a duration matching DURATION_PATTERN; undefined otherwise. */
export function parseDuration(text: string): number | undefined {
  if (!regex(DURATION_PATTERN).test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(/([0-9]+)(ms|s|m|h)/g)) total += Number(m[1]) * UNIT_MS[m[2]!]!;
  return total;
}

export const IdleTimeoutSchema = cel(
  boundedString(32, 2)
    .regex(regex(DURATION_PATTERN), {
      message: 'must be a duration such as "90s", "30m" or "1h30m"',
    })
    .refine(
      (d) => {
        const ms = parseDuration(d) ?? 0;
        return ms >= MIN_IDLE_TIMEOUT_SECONDS * 1000 && ms <= MAX_IDLE_TIMEOUT_SECONDS * 1000;
      },
      {
        message: `must be between ${MIN_IDLE_TIMEOUT_SECONDS}s and ${MAX_IDLE_TIMEOUT_SECONDS / 3600}h`,
      },
    ),
  {
    rule: `duration(self) >= duration('${MIN_IDLE_TIMEOUT_SECONDS}s') && duration(self) <= duration('${MAX_IDLE_TIMEOUT_SECONDS / 3600}h')`,
    message: `must be between ${MIN_IDLE_TIMEOUT_SECONDS}s and ${MAX_IDLE_TIMEOUT_SECONDS / 3600}h`,
  },
);
