// The Sandbox spec: what a user asks for. Single source of truth for the CRD's
// openAPIV3Schema (see ./crd), the controller's runtime validation, and the types.
import { z } from "zod";
import { AGENT_PORT } from "../dataplane/protocol.js";
import { EGRESS_PORTS, EGRESS_SIDECAR_UID } from "../egress/contract.js";
import {
  boundedString,
  cel,
  crossFieldRule,
  DNS_SUBDOMAIN_PATTERN,
  dateTime,
  doc,
  ENV_VAR_NAME_PATTERN,
  IANA_SVC_NAME_PATTERN,
  listType,
  quantity,
  regex,
} from "./schema-helpers.js";
import { IdleTimeoutSchema, MountsSchema, WorkspaceSchema } from "./workspace.js";

export const BACKENDS = ["pod", "docker"] as const;
export const EGRESS_ACTIONS = ["allow", "deny"] as const;
export const EXPIRY_ACTIONS = ["Delete", "Retain"] as const;

/** Bounds. Every list and string is bounded so CEL cost and object size stay predictable. */
export const LIMITS = {
  egressRules: 512,
  egressRulePorts: 32,
  ports: 16,
  env: 128,
  command: 64,
  args: 256,
  maxTtlSeconds: 366 * 24 * 3600,
} as const;

export const DEFAULT_TTL_SECONDS = 3600;

/** The egress sidecar's UID (the egress contract's): the firewall lets only it out, so no workload may run as it. */
export { EGRESS_SIDECAR_UID };

const RESERVED_UID_MESSAGE = `UID ${EGRESS_SIDECAR_UID} is reserved for the egress sidecar`;

/**
 * Ports in the sandbox's network namespace that belong to the operator: the
 * in-sandbox agent's and the egress sidecar's. A workload declaring one would
 * either fail to bind or, worse, be mistaken for them.
 */
export const RESERVED_PORTS: readonly number[] = Object.freeze(
  [AGENT_PORT, ...Object.values(EGRESS_PORTS)].sort((a, b) => a - b),
);
const RESERVED_PORT_MESSAGE = `ports ${RESERVED_PORTS.join(", ")} are reserved for the sandbox agent and the egress sidecar`;

// ---- egress

/**
 * A DNS name as a policy target: case-insensitive, optional trailing dot, and a last
 * label that is not all digits (so "1.2.3.999" is not mistaken for a name).
 */
const DNS_NAME_CEL =
  "matches('^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\\\\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*\\\\.?$') && !%s.matches('(^|\\\\.)[0-9]+\\\\.?$')";

function dnsNameCel(expr: string): string {
  return `${expr}.${DNS_NAME_CEL.replace("%s", expr)}`;
}

export const EgressTargetSchema = cel(
  doc(
    boundedString(253, 1),
    'Destination: a DNS name ("api.example.com"), a wildcard for its subdomains at any depth ("*.example.org" matches "a.example.org" and "a.b.example.org" but not "example.org"), an IP address ("192.0.2.10", "2001:db8::1") or a CIDR ("10.20.0.0/16"). Names are case-insensitive; a trailing dot is ignored.',
  ),
  {
    rule: `self.startsWith('*.') ? ${dnsNameCel("self.substring(2)")} : (self.contains('/') ? isCIDR(self) : (isIP(self) || ${dnsNameCel("self")}))`,
    messageExpression:
      "'target ' + self + ' is not a DNS name, a \"*.\" wildcard, an IP address or a CIDR'",
  },
);

export const EgressRuleSchema = z.object({
  action: doc(z.enum(EGRESS_ACTIONS), "What to do with traffic that matches: allow or deny."),
  target: EgressTargetSchema,
  ports: doc(
    listType(z.array(z.int().min(1).max(65535)).max(LIMITS.egressRulePorts).optional(), "set"),
    "Destination ports this rule applies to (1-65535). Empty or absent means every port.",
  ),
});

export const EgressPolicySchema = z.object({
  defaultAction: doc(
    z.enum(EGRESS_ACTIONS).default("deny"),
    "What happens to traffic no rule matches. Defaults to deny: a sandbox reaches only what a rule allows.",
  ),
  rules: doc(
    listType(z.array(EgressRuleSchema).max(LIMITS.egressRules).optional(), "atomic"),
    `Ordered rules; the first rule whose target (and port, if given) matches decides. At most ${LIMITS.egressRules}.`,
  ),
});

export const NetworkSchema = z.object({
  egress: doc(
    EgressPolicySchema.default({ defaultAction: "deny" }),
    "Outbound traffic policy, enforced by the egress sidecar and a fail-closed firewall on both backends.",
  ),
});

// ---- workload

export const EnvVarSchema = crossFieldRule(
  z.object({
    name: doc(
      boundedString(256, 1).regex(regex(ENV_VAR_NAME_PATTERN)),
      "Name of the environment variable.",
    ),
    value: doc(boundedString(32768).optional(), "Literal value."),
    valueFrom: doc(
      z
        .object({
          secretKeyRef: doc(
            z.object({
              name: doc(
                boundedString(253, 1).regex(regex(DNS_SUBDOMAIN_PATTERN)),
                "Name of a Secret in the Sandbox's namespace.",
              ),
              key: doc(
                boundedString(253, 1).regex(regex("^[-._a-zA-Z0-9]+$")),
                "Key within the Secret.",
              ),
              optional: doc(
                z.boolean().optional(),
                "When true, a missing Secret or key leaves the variable unset instead of blocking the sandbox.",
              ),
            }),
            "Take the value from a key of a Secret in the same namespace.",
          ),
        })
        .optional(),
      "Source for the value, instead of value.",
    ),
  }),
  {
    rule: "!(has(self.value) && has(self.valueFrom))",
    message: "value and valueFrom are mutually exclusive",
    path: ["valueFrom"],
  },
  (env) => !(env.value !== undefined && env.valueFrom !== undefined),
);

const PortSchema = z.object({
  name: doc(
    boundedString(15, 1).regex(regex(IANA_SVC_NAME_PATTERN)),
    'Port name (IANA service name, e.g. "http"); becomes the endpoint\'s name.',
  ),
  port: doc(
    cel(
      z
        .int()
        .min(1)
        .max(65535)
        .refine((p) => !RESERVED_PORTS.includes(p), RESERVED_PORT_MESSAGE),
      { rule: `!(self in [${RESERVED_PORTS.join(", ")}])`, message: RESERVED_PORT_MESSAGE },
    ),
    `Port the workload listens on (1-65535; ${RESERVED_PORTS.join(", ")} are reserved).`,
  ),
  visibility: doc(
    // Optional rather than defaulted: a default would be written into every
    // stored port, so re-applying a file that omits it would always differ
    // (lists are replaced whole) and older Sandboxes' spec hashes would change.
    z.enum(["private", "public"]).optional(),
    "Who the gateway lets reach this port: private (when omitted) needs a credential allowed the connect verb on this sandbox; public serves anyone who has the URL.",
  ),
});

export const ResourcesSchema = z.object({
  cpu: doc(
    cel(quantity().default("1"), {
      rule: "quantity(string(self)).isGreaterThan(quantity('0'))",
      message: "cpu must be greater than 0",
    }),
    'CPU limit (and request), as a Kubernetes quantity: "500m", "2". Defaults to "1".',
  ),
  memory: doc(
    cel(quantity().default("1Gi"), {
      rule: "quantity(string(self)).compareTo(quantity('4Mi')) >= 0",
      message: "memory must be at least 4Mi",
    }),
    'Memory limit (and request), as a Kubernetes quantity: "512Mi", "2Gi". Defaults to "1Gi".',
  ),
  pids: doc(
    z.int().min(16).max(1048576).default(1024),
    "Maximum number of processes and threads in the sandbox (16-1048576). Defaults to 1024.",
  ),
});

export const LifetimeSchema = crossFieldRule(
  z.object({
    ttlSeconds: doc(
      z.int().min(1).max(LIMITS.maxTtlSeconds).optional(),
      "Lifetime in seconds, counted from the Sandbox's creation. Renew by patching a larger value.",
    ),
    expiresAt: doc(
      dateTime().optional(),
      'Absolute expiry time, RFC 3339 (e.g. "2026-01-02T15:04:05Z"). Renew by patching a later time.',
    ),
    onExpire: doc(
      z.enum(EXPIRY_ACTIONS).default("Delete"),
      "What happens at expiry: Delete removes the Sandbox; Retain removes its workload but keeps the Sandbox with phase Expired.",
    ),
  }),
  {
    rule: "has(self.ttlSeconds) != has(self.expiresAt)",
    message: "exactly one of ttlSeconds or expiresAt must be set",
    path: ["ttlSeconds"],
  },
  (l) => (l.ttlSeconds !== undefined) !== (l.expiresAt !== undefined),
);

const SecuritySchema = z.object({
  runAsUser: doc(
    cel(
      z
        .int()
        .min(0)
        .max(2147483647)
        .refine((uid) => uid !== EGRESS_SIDECAR_UID, RESERVED_UID_MESSAGE)
        .optional(),
      { rule: `self != ${EGRESS_SIDECAR_UID}`, message: RESERVED_UID_MESSAGE },
    ),
    `UID the workload runs as. Defaults to 1000 (non-root); 0 is allowed only when set explicitly; ${EGRESS_SIDECAR_UID} is reserved for the egress sidecar.`,
  ),
  runAsGroup: doc(
    z.int().min(0).max(2147483647).optional(),
    "GID the workload runs as. Defaults to 1000.",
  ),
  readOnlyRootFilesystem: doc(
    z.boolean().default(false),
    "Mount the image's root filesystem read-only; /tmp and the working directory stay writable.",
  ),
  runtimeClassName: doc(
    boundedString(253, 1).regex(regex(DNS_SUBDOMAIN_PATTERN)).optional(),
    'RuntimeClass for a stronger isolation boundary (e.g. "gvisor", "kata"); pod backend only.',
  ),
});

const uniqueBy = (key: "name" | "port") => `self.all(p, self.exists_one(q, q.${key} == p.${key}))`;

/** Where the workspace (or the working directory's scratch volume) is mounted. */
export const DEFAULT_WORKING_DIR = "/workspace";
const WORKSPACE_PATH_CEL =
  "has(self.workspace) && has(self.workspace.mountPath) ? self.workspace.mountPath : (has(self.workingDir) ? self.workingDir : '/workspace')";

/** The path the workspace is mounted at: its own mountPath, else the working directory. */
export function workspaceMountPath(spec: {
  workingDir?: string;
  workspace?: { mountPath?: string };
}): string {
  return spec.workspace?.mountPath ?? spec.workingDir ?? DEFAULT_WORKING_DIR;
}

const SandboxSpecObject = z.object({
  backend: doc(
    z.enum(BACKENDS).optional(),
    "Where the sandbox runs: pod (a hardened Pod in this cluster) or docker (containers on the operator's Docker host). Defaults to the operator's --default-backend.",
  ),
  image: doc(
    boundedString(1024, 1).regex(regex("^[^\\s]+$")),
    'Container image to run, e.g. "python:3.12-slim".',
  ),
  command: doc(
    listType(z.array(boundedString(4096)).max(LIMITS.command).optional(), "atomic"),
    "Entrypoint; replaces the image's ENTRYPOINT.",
  ),
  args: doc(
    listType(z.array(boundedString(32768)).max(LIMITS.args).optional(), "atomic"),
    "Arguments to the entrypoint; replace the image's CMD.",
  ),
  workingDir: doc(
    boundedString(4096, 1).regex(regex("^/")).optional(),
    "Absolute working directory of the workload.",
  ),
  env: doc(
    listType(z.array(EnvVarSchema).max(LIMITS.env).optional(), "map", ["name"]),
    "Environment variables of the workload.",
  ),
  resources: doc(
    ResourcesSchema.default({ cpu: "1", memory: "1Gi", pids: 1024 }),
    "Resource limits; on the pod backend requests equal limits.",
  ),
  ports: doc(
    cel(
      listType(z.array(PortSchema).max(LIMITS.ports).optional(), "atomic"),
      { rule: uniqueBy("port"), message: "port numbers must be unique" },
      { rule: uniqueBy("name"), message: "port names must be unique" },
    ),
    "Ports the workload serves; each becomes an entry of status.endpoints.",
  ),
  lifetime: doc(
    LifetimeSchema.default({ ttlSeconds: DEFAULT_TTL_SECONDS, onExpire: "Delete" }),
    `When the sandbox ends. Every sandbox has one; defaults to ttlSeconds ${DEFAULT_TTL_SECONDS}.`,
  ),
  network: doc(
    NetworkSchema.default({ egress: { defaultAction: "deny" } }),
    "Network policy of the sandbox.",
  ),
  security: doc(
    SecuritySchema.default({ readOnlyRootFilesystem: false }),
    "Security settings of the workload, hardened by default.",
  ),
  workspace: doc(
    cel(WorkspaceSchema.optional(), {
      rule: "self == oldSelf",
      message: "spec.workspace is immutable: the workspace is made (or chosen) once",
    }),
    "A persistent workspace: a PVC (pod backend) or a named volume (docker backend) that can outlive the Sandbox, be mounted by a later one, be kept while suspended and be snapshotted. Unset: the working directory is scratch space that goes with the workload.",
  ),
  mounts: MountsSchema,
  suspended: doc(
    z.boolean().optional(),
    "true stops the workload and releases its compute (the Pod or containers are removed) while the Sandbox, its workspace and identity (name, agent credential, Service) stay, with phase Suspended; false (or unset) runs it again on the same workspace. The lifetime keeps counting while suspended.",
  ),
  idleTimeout: doc(
    IdleTimeoutSchema.optional(),
    'Suspend the sandbox on its own after this long without use (no data-plane call, no request to a declared port), e.g. "15m". A call through the SDK or the gateway resumes it. Unset: never suspended for idleness.',
  ),
});

export const SandboxSpecSchema = cel(
  crossFieldRule(
    SandboxSpecObject,
    {
      rule: `!has(self.mounts) || !self.mounts.exists(m, m.mountPath == (${WORKSPACE_PATH_CEL}))`,
      message:
        "a mount cannot use the workspace's mount path (workspace.mountPath, else workingDir, else /workspace)",
      path: ["mounts"],
    },
    (spec) => !(spec.mounts ?? []).some((m) => m.mountPath === workspaceMountPath(spec)),
  ),
  {
    rule: "has(self.workspace) == has(oldSelf.workspace)",
    message:
      "spec.workspace is immutable: it cannot be added to or removed from an existing Sandbox",
    fieldPath: ".workspace",
  },
);

export type SandboxSpec = z.output<typeof SandboxSpecSchema>;
export type SandboxSpecInput = z.input<typeof SandboxSpecSchema>;
export type EgressPolicy = z.output<typeof EgressPolicySchema>;
export type EgressRule = z.output<typeof EgressRuleSchema>;
export type Backend = (typeof BACKENDS)[number];
