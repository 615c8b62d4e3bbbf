// Egress enforcement inside the sandbox Pod (DESIGN.md, "Egress model"):
// Both containers run the operator image's static Go egress binary
// (EGRESS_EXECUTABLE): no Node.js start, a few MiB resident per sandbox.
//   1. `egress-init`, the first init container, installs the fail-closed
//      firewall in the Pod's network namespace. It alone holds NET_ADMIN.
//   2. `egress`, a native sidecar (init container with restartPolicy Always),
//      serves DNS and the proxies. Its startup probe gates the workload: the
//      kubelet starts the workload only once egress is enforced.
//   3. The workload gets HTTP(S)_PROXY pointing at the sidecar.
//
// The policy travels as a Pod annotation exposed to the sidecar through a
// downward-API volume: the Pod's start-up policy (egress-init compiles its
// address rules; the sidecar starts on it). With the policy channel (the
// controller's policy endpoint, src/policy-server/), the sidecar then follows
// the endpoint, within milliseconds of a change, and acknowledges it; without
// it, the kubelet rewrites the file on its sync period (up to a minute).
//
// The channel's credential is a projected ServiceAccount token mounted into
// the sidecar container alone: the workload has no mount of it, no token of
// its own (automountServiceAccountToken: false) and no shared process
// namespace, so it cannot read it; the lockdown refuses its connections to the
// endpoint (only the sidecar's UID reaches it) and the sidecar's proxies
// refuse to dial it for anyone.
import type {
  V1Container,
  V1EnvVar,
  V1NetworkPolicyPeer,
  V1Volume,
  V1VolumeMount,
} from "@kubernetes/client-node";
import { GROUP } from "../../api/group.js";
import type { EgressPolicy } from "../../api/sandbox-spec.js";
import {
  EGRESS_CONTRACT,
  EGRESS_EXECUTABLE,
  EGRESS_PORTS,
  lockdownFlags,
  POLICY_DIR,
  POLICY_FILE_NAME,
  policyDocument,
  sidecarFlags,
} from "../../egress/contract.js";
import { workloadProxyEnv } from "../../egress/proxy-env.js";
import {
  POLICY_AUDIENCE,
  POLICY_CA_ANNOTATION,
  POLICY_CA_FILE_NAME,
  POLICY_TOKEN_DIR,
  POLICY_TOKEN_FILE,
  POLICY_TOKEN_SECONDS,
} from "../../policy-server/contract.js";

export const EGRESS_INIT_CONTAINER = "egress-init";
export const EGRESS_SIDECAR_CONTAINER = "egress";
/** The sidecar's UID: the only one the firewall lets out. Workloads may not use it. */
export const EGRESS_UID = EGRESS_CONTRACT.sidecarUid;
export const POLICY_ANNOTATION = `${GROUP}/egress-policy`;

/** The sidecar's ports (the egress contract's, src/egress/contract.ts). */
export const EgressPorts = EGRESS_PORTS;

export interface EgressOptions {
  /** The operator image, which carries the egress entry points. */
  image: string;
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  /** The live policy channel; without it the sidecar follows the downward-API file only. */
  channel?: PolicyChannel;
}

/** Where sandbox Pods reach the controller's policy endpoint, and how they trust it. */
export interface PolicyChannel {
  /** The address the sidecar dials (an IP: the lockdown's rule needs one). */
  host: string;
  port: number;
  /** The name the endpoint's certificate carries, when not `host` (a Service's DNS name). */
  serverName?: string;
  /** PEM of the CA that signed the endpoint's certificate. */
  caPem: string;
  /**
   * Who the NetworkPolicy lets the Pod reach on `port`: the operator's Pods
   * (a Service's ClusterIP is translated before NetworkPolicy sees it), or,
   * when unset, `host` itself as an ipBlock (a controller outside the cluster).
   */
  peer?: V1NetworkPolicyPeer;
}

const TOKEN_VOLUME = "egress-channel-token";

/** The policy as the sidecar reads it; stored in the Pod annotation. */
export function policyAnnotation(policy: EgressPolicy): string {
  return policyDocument(policy);
}

export function egressInitContainers(sandboxId: string, opts: EgressOptions): V1Container[] {
  const common = { image: opts.image, imagePullPolicy: opts.imagePullPolicy };
  const lockdown: V1Container = {
    ...common,
    name: EGRESS_INIT_CONTAINER,
    command: [EGRESS_EXECUTABLE],
    args: [
      "egress-init",
      ...lockdownFlags(EGRESS_CONTRACT),
      ...(opts.channel ? [`--controller=${opts.channel.host}:${opts.channel.port}`] : []),
    ],
    volumeMounts: [{ name: "egress-policy", mountPath: POLICY_DIR, readOnly: true }],
    resources: {
      // One-shot: a full core lets it finish sooner than 500m did (bench/node
      // measured 0.4 s of CPU for the Node.js version), and an init
      // container's limit costs nothing once it has exited.
      requests: { cpu: "10m", memory: "32Mi" },
      limits: { cpu: "1", memory: "64Mi" },
    },
    securityContext: {
      // Root with NET_ADMIN in the Pod's network namespace, plus NET_RAW because
      // iptables-legacy (auto-chosen on legacy nodes) opens a raw socket; nothing
      // else (test/egress/capabilities.test.ts measures both).
      runAsUser: 0,
      runAsNonRoot: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"], add: ["NET_ADMIN", "NET_RAW"] },
    },
  };
  const probe = { httpGet: { path: "/readyz", port: EgressPorts.health }, periodSeconds: 2 };
  // The startup probe gates the workload, so its period is start-up latency:
  // probed every second (up to 60 s, as before), a sidecar that is up is found
  // within 1 s instead of 2 (bench/node). Readiness keeps 2 s: it is steady-state
  // cost, paid by every running sandbox.
  const startupProbe = { ...probe, periodSeconds: 1, failureThreshold: 60 };
  const sidecar: V1Container = {
    ...common,
    name: EGRESS_SIDECAR_CONTAINER,
    restartPolicy: "Always",
    command: [EGRESS_EXECUTABLE],
    args: [
      "egress",
      ...sidecarFlags(EGRESS_CONTRACT),
      `--sandbox=${sandboxId}`,
      ...(opts.channel ? channelFlags(opts.channel) : []),
    ],
    volumeMounts: [
      { name: "egress-policy", mountPath: POLICY_DIR, readOnly: true },
      ...(opts.channel ? [tokenMount] : []),
    ],
    startupProbe,
    readinessProbe: probe,
    // The Go sidecar idles near 8 MiB and stays near 12 MiB with 100 open
    // tunnels or after bulk transfers (bench/results/egress.json).
    resources: { requests: { cpu: "50m", memory: "16Mi" }, limits: { cpu: "1", memory: "64Mi" } },
    securityContext: {
      runAsUser: EGRESS_UID,
      runAsGroup: EGRESS_UID,
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    },
  };
  return [lockdown, sidecar];
}

const tokenMount: V1VolumeMount = {
  name: TOKEN_VOLUME,
  mountPath: POLICY_TOKEN_DIR,
  readOnly: true,
};

function channelFlags(c: PolicyChannel): string[] {
  return [
    `--policy-url=https://${c.host.includes(":") ? `[${c.host}]` : c.host}:${c.port}`,
    `--policy-token-file=${POLICY_TOKEN_FILE}`,
    `--policy-ca-file=${POLICY_DIR}/${POLICY_CA_FILE_NAME}`,
    ...(c.serverName ? [`--policy-server-name=${c.serverName}`] : []),
  ];
}

export function egressVolumes(channel?: PolicyChannel): V1Volume[] {
  const annotation = (key: string) => ({ fieldPath: `metadata.annotations['${key}']` });
  return [
    {
      name: "egress-policy",
      downwardAPI: {
        items: [
          { path: POLICY_FILE_NAME, fieldRef: annotation(POLICY_ANNOTATION) },
          // The CA is public; it rides the Pod (no object per namespace) and a
          // rotated one reaches running sidecars like the policy file does.
          ...(channel
            ? [{ path: POLICY_CA_FILE_NAME, fieldRef: annotation(POLICY_CA_ANNOTATION) }]
            : []),
        ],
      },
    },
    ...(channel
      ? [
          {
            name: TOKEN_VOLUME,
            projected: {
              // Read-only for its owner; with the Pod's fsGroup the kubelet also
              // gives the group read (the sidecar reads it as a member). What
              // keeps it from the workload is that no other container mounts it
              // and the Pod shares no process namespace.
              defaultMode: 0o400,
              sources: [
                {
                  serviceAccountToken: {
                    audience: POLICY_AUDIENCE,
                    expirationSeconds: POLICY_TOKEN_SECONDS,
                    path: "token",
                  },
                },
              ],
            },
          },
        ]
      : []),
  ];
}

/** Proxy settings for the workload; tools that ignore them are caught by the transparent proxy. */
export function proxyEnv(): V1EnvVar[] {
  return Object.entries(workloadProxyEnv()).map(([name, value]) => ({ name, value }));
}
