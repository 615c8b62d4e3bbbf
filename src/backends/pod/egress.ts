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
// downward-API volume: the kubelet rewrites the file atomically when the
// annotation changes, so a policy change reaches the running sidecar without
// restarting the workload (and without an extra object per sandbox).
import type { V1Container, V1EnvVar, V1Volume } from "@kubernetes/client-node";
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
}

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
    args: ["egress-init", ...lockdownFlags(EGRESS_CONTRACT)],
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
    args: ["egress", ...sidecarFlags(EGRESS_CONTRACT), `--sandbox=${sandboxId}`],
    volumeMounts: [{ name: "egress-policy", mountPath: POLICY_DIR, readOnly: true }],
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

export function egressVolumes(): V1Volume[] {
  return [
    {
      name: "egress-policy",
      downwardAPI: {
        items: [
          {
            path: POLICY_FILE_NAME,
            fieldRef: { fieldPath: `metadata.annotations['${POLICY_ANNOTATION}']` },
          },
        ],
      },
    },
  ];
}

/** Proxy settings for the workload; tools that ignore them are caught by the transparent proxy. */
export function proxyEnv(): V1EnvVar[] {
  return Object.entries(workloadProxyEnv()).map(([name, value]) => ({ name, value }));
}
