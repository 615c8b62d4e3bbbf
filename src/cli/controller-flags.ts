// Flags of `sandbox-operator controller`, validated with zod so a bad value
// exits non-zero naming the flag, before anything starts.
import { parseArgs } from "node:util";
import { z } from "zod";
import { BACKENDS, type Backend } from "../api/sandbox-spec.js";
import { parseAllowedHostPaths } from "../backends/docker/host-paths.js";

export const CONTROLLER_USAGE = `Usage: sandbox-operator controller [flags]

Runs the Sandbox controller.

Flags:
  --kubeconfig PATH                 kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)
  --namespaces NS[,NS...]           namespaces to watch (default: all)
  --default-backend pod|docker      backend for Sandboxes that do not name one (default: pod)
  --leader-elect=true|false         elect a leader on a Lease; only the leader reconciles (default: true)
  --leader-election-namespace NS    namespace of the Lease (default: $POD_NAMESPACE or "default")
  --leader-election-id NAME         name of the Lease (default: sandbox-operator)
  --shards N                        with leader election: split Sandboxes into N shards, each on a
                                    Lease of its own (<id>-shard-<i>), so several replicas reconcile
                                    at once, each its share and watching only its shards' objects
                                    (by the sandboxing.dev/shard label it sets); fixed per
                                    installation (default: 1, one leader)
  --metrics-bind-address HOST:PORT  serve /metrics (default: 0.0.0.0:8080; "0" disables)
  --health-probe-bind-address HOST:PORT
                                    serve /healthz and /readyz (default: 0.0.0.0:8081)
  --concurrency N                   Sandboxes reconciled in parallel (default: 16)
  --kube-api-qps N                  client-side request rate to the apiserver (default: 200)
  --kube-api-burst N                burst above the rate (default: 400)
  --egress-image IMAGE              image of the egress init container and sidecar in sandbox Pods
                                    (default: $EGRESS_IMAGE, else sandbox-operator:<version>)
  --backends pod,docker             backends to enable besides the default backend (default: pod);
                                    the pod backend is always on
  --docker-host URL                 Docker Engine for the docker backend: unix:///path or tcp://host:port
                                    (default: $DOCKER_HOST, else the local socket; TLS from
                                    $DOCKER_TLS_VERIFY and $DOCKER_CERT_PATH as the docker CLI reads them)
  --docker-dns HOST[:PORT]          resolver docker sandboxes' egress sidecars forward allowed names to
                                    (default: first non-loopback nameserver in /etc/resolv.conf)
  --docker-publish-address IP       host address declared ports are published on (default: 127.0.0.1)
  --docker-owner ID                 label value marking what this installation creates on the Docker
                                    host; installations sharing a host need distinct ones (default: default)
  --docker-allowed-host-paths PREFIX[:rw][,...]
                                    host paths docker sandboxes may mount (spec.mounts[].hostPath):
                                    absolute prefixes, read-only unless the entry ends in ":rw"
                                    (default: none)
  --docker-policy-dir DIR           host directory holding each docker sandbox's egress policy file,
                                    bind-mounted read-only into its sidecar: a policy change is a
                                    local write (needs a local daemon), and the sidecar acknowledges
                                    each policy it applies in DIR/applied/<uid> (Ready waits for it);
                                    "" uploads it through the daemon instead, unacknowledged
                                    (default: /run/sandbox-operator/<owner>/policies as root with a
                                    local daemon, else "")
  --policy-endpoint IP:PORT         turn on the pod backend's live policy channel: sandbox Pods' egress
                                    sidecars dial this address (the operator's policy Service's ClusterIP,
                                    or the controller's address when it runs outside the cluster)
  --policy-service NS/NAME          the same, with the address read at start from the operator's policy
                                    Service (its ClusterIP and port "policy"); sidecars check the
                                    endpoint's certificate against NAME.NS.svc
  --policy-bind-address HOST:PORT   where this process serves the policy endpoint (default: 0.0.0.0:15090)
  --policy-tls-cert PATH --policy-tls-key PATH --policy-ca PATH
                                    the endpoint's certificate and key, and the CA that signed it (given
                                    to the sidecars); required with --policy-endpoint
  --policy-peer-namespace NS --policy-peer-labels K=V[,K=V]
                                    the operator Pods sandbox NetworkPolicies let the sidecar reach on
                                    the endpoint's port (default: the endpoint's IP as an ipBlock)
  --gateway-namespace NS            the sandbox gateway runs in NS: pod-backend agents listen on the
                                    pod IP and their NetworkPolicy admits the agent port from Pods
                                    labelled sandboxing.dev/gateway=true in NS only (needs --agent-key-file)
  --agent-key-file PATH             key shared with the gateway that agent credentials derive from
                                    (at least 32 bytes; needs --gateway-namespace)
  --stall-timeout SECONDS           fail a Sandbox whose workload stays stalled this long (default: 300)
  --log-level LEVEL                 trace|debug|info|warn|error (default: info)
`;

const address = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[^:]*):\d{1,5}$|^0$/, 'must be HOST:PORT (or "0" to disable)');

const bool = z.enum(["true", "false"]).transform((v) => v === "true");

const FlagsSchema = z.object({
  kubeconfig: z.string().min(1).optional(),
  namespaces: z
    .string()
    .optional()
    .transform((v) =>
      v
        ? v
            .split(",")
            .map((s) => s.trim())
            .filter(Boolean)
        : [],
    )
    .pipe(z.array(z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be namespace names"))),
  "default-backend": z.enum(BACKENDS).default("pod"),
  "leader-elect": bool.default(true),
  "leader-election-namespace": z
    .string()
    .min(1)
    .default(process.env.POD_NAMESPACE || "default"),
  "leader-election-id": z.string().min(1).default("sandbox-operator"),
  shards: z.coerce.number().int().min(1).max(256).default(1),
  "metrics-bind-address": address.default("0.0.0.0:8080"),
  "health-probe-bind-address": address.default("0.0.0.0:8081"),
  // A sandbox costs about seven writes to start (bench/scale): at 20 QPS and 4
  // workers the operator started 3-4 a second where the apiserver took ten times
  // that. API Priority and Fairness, not this limit, is what protects the server.
  concurrency: z.coerce.number().int().min(1).max(256).default(16),
  "kube-api-qps": z.coerce.number().positive().max(10_000).default(200),
  "kube-api-burst": z.coerce.number().int().min(1).max(100_000).default(400),
  "egress-image": z
    .string()
    .regex(/^[^\s]+$/, "must be an image reference")
    .default(process.env.EGRESS_IMAGE || "sandbox-operator:0.1.0"),
  backends: z
    .string()
    .optional()
    .transform((v) => (v ? v.split(",").map((b) => b.trim()) : []))
    .pipe(z.array(z.enum(BACKENDS))),
  "docker-host": z
    .string()
    .regex(/^(unix|tcp|npipe):\/\/\S+$/, "must be unix:///path or tcp://host:port")
    .optional(),
  "docker-dns": z
    .string()
    .regex(/^[0-9a-fA-F.:]+$|^[A-Za-z0-9.-]+(:\d{1,5})?$/, "must be HOST or HOST:PORT")
    .optional(),
  "docker-publish-address": z.ipv4().or(z.ipv6()).default("127.0.0.1"),
  "docker-owner": z
    .string()
    .regex(/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/, "must be a label value")
    .default("default"),
  "docker-allowed-host-paths": z
    .string()
    .optional()
    .transform((v, ctx) => {
      try {
        return parseAllowedHostPaths(v);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
        return z.NEVER;
      }
    }),
  "docker-policy-dir": z
    .string()
    .regex(/^$|^\/\S*$/, "must be an absolute path, or empty for none")
    .optional(),
  "policy-endpoint": z
    .string()
    .regex(
      /^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):\d{1,5}$/,
      "must be IP:PORT (an address: the Pod's firewall names it)",
    )
    .optional(),
  "policy-service": z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z]([-a-z0-9]*[a-z0-9])?$/, "must be NAMESPACE/NAME")
    .optional(),
  "policy-bind-address": address.default("0.0.0.0:15090"),
  "policy-tls-cert": z.string().min(1).optional(),
  "policy-tls-key": z.string().min(1).optional(),
  "policy-ca": z.string().min(1).optional(),
  "policy-peer-namespace": z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a namespace name")
    .optional(),
  "policy-peer-labels": z
    .string()
    .regex(
      /^[A-Za-z0-9./_-]+=[A-Za-z0-9._-]*(,[A-Za-z0-9./_-]+=[A-Za-z0-9._-]*)*$/,
      "must be K=V[,K=V...]",
    )
    .optional(),
  "gateway-namespace": z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a namespace name")
    .optional(),
  "agent-key-file": z.string().min(1).optional(),
  "stall-timeout": z.coerce.number().int().min(1).max(86_400).default(300),
  "log-level": z.enum(["trace", "debug", "info", "warn", "error", "fatal"]).default("info"),
});

export type ControllerFlags = z.output<typeof FlagsSchema>;

/** Backends to run: pod (always), those named, and the default backend, which must work. */
export function enabledBackends(flags: ControllerFlags): Set<Backend> {
  return new Set<Backend>(["pod", ...flags.backends, flags["default-backend"]]);
}

export class FlagError extends Error {}

export function parseControllerFlags(argv: string[]): ControllerFlags {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: Object.fromEntries(
        Object.keys(FlagsSchema.shape).map((name) => [name, { type: "string" as const }]),
      ),
    }));
  } catch (err) {
    throw new FlagError(err instanceof Error ? err.message : String(err));
  }
  const parsed = FlagsSchema.safeParse(values);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const flag = String(issue.path[0]);
    throw new FlagError(`--${flag}: ${issue.message} (got ${JSON.stringify(values[flag])})`);
  }
  const f = parsed.data;
  if (!f["gateway-namespace"] !== !f["agent-key-file"])
    throw new FlagError("--gateway-namespace and --agent-key-file go together");
  if (f["policy-endpoint"] && f["policy-service"])
    throw new FlagError("--policy-endpoint and --policy-service: give one");
  const channel = f["policy-endpoint"]
    ? "--policy-endpoint"
    : f["policy-service"]
      ? "--policy-service"
      : undefined;
  if (channel) {
    for (const flag of ["policy-tls-cert", "policy-tls-key", "policy-ca"] as const)
      if (!f[flag]) throw new FlagError(`--${flag}: required with ${channel}`);
    if (!!f["policy-peer-namespace"] !== !!f["policy-peer-labels"])
      throw new FlagError("--policy-peer-namespace and --policy-peer-labels go together");
  }
  return f;
}

/** The policy channel's endpoint as host and port (IPv6 without brackets). */
export function policyEndpoint(value: string): { host: string; port: number } {
  const i = value.lastIndexOf(":");
  return { host: value.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(value.slice(i + 1)) };
}

/** "HOST:PORT" -> listen options; undefined when disabled with "0". */
export function listenAddress(value: string): { host: string; port: number } | undefined {
  if (value === "0") return undefined;
  const i = value.lastIndexOf(":");
  const host = value.slice(0, i).replace(/^\[|\]$/g, "") || "0.0.0.0";
  return { host, port: Number(value.slice(i + 1)) };
}

/**
 * Where docker sandboxes' policy files live on the host (see DockerSettings.policyDir):
 * the flag's word, else a runtime directory when this process shares the
 * daemon's file system and may write there (root); undefined: uploaded.
 */
export function dockerPolicyDir(
  flag: string | undefined,
  local: boolean,
  root: boolean,
  owner: string,
): string | undefined {
  if (flag !== undefined) return flag === "" ? undefined : flag;
  return local && root ? `/run/sandbox-operator/${owner}/policies` : undefined;
}
