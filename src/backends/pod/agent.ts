// The in-sandbox agent on the pod backend (docs/agent-protocol.md, "Injection").
//
// Delivered from the operator image: an init container copies the binary into
// an emptyDir that the workload container mounts read-only at /.sandbox (a
// volume: the image stays untouched and a read-only root file system works).
//
// Started beside the entrypoint, never in front of it: the workload
// container's postStart hook runs `sandbox-agent --daemon`, which starts the
// agent detached inside the workload container itself (its UID, no
// capabilities, its file system and mount namespace, which a sidecar could not
// share) and returns once it serves. The Pod's command, the image's
// ENTRYPOINT/CMD (the cluster cannot read them, and need not), PID 1, signals
// and the exit code stay what the Sandbox says. The kubelet marks the
// container running only after the hook returned, so a Ready sandbox has a
// serving agent.
//
// The credential: a Secret per sandbox (owned by the Sandbox, so it goes with
// it) holds the token and its SHA-256. Only the digest is mounted into the
// Pod: the workload runs as the agent's user and could read anything the agent
// reads, and the digest opens nothing. Clients read the token from the Secret,
// which needs `get secrets` in the sandbox's namespace besides
// `create pods/portforward`.
//
// Without a gateway the agent listens on the Pod's loopback only:
// `pods/portforward` enters the Pod's network namespace from the node and
// connects to localhost, so no other Pod can reach the port whatever the
// NetworkPolicy says, and the egress firewall's loopback rules carry the
// replies; nothing new opens outward.
//
// With a gateway (GatewayAccess: the operator's --gateway-namespace and
// --agent-key-file) the agent listens on the Pod's addresses too, and the
// sandbox's NetworkPolicy admits its port from the gateway's Pods in the
// gateway's namespace only (./network-policy.ts). The credential is still
// required: derived from the shared key and the sandbox's UID, so the gateway
// needs no access to Secrets. The firewall lets the replies out (conntrack
// REPLY direction); the workload gains nothing it could send.
import type {
  V1Container,
  V1Lifecycle,
  V1Secret,
  V1Volume,
  V1VolumeMount,
} from "@kubernetes/client-node";
import type { Sandbox } from "../../api/sandbox.js";
import { AGENT_PORT } from "../../dataplane/protocol.js";
import { AGENT_DIR, AGENT_IMAGE_PATH, AGENT_PATH, agentTokenDigest } from "../agent.js";
import type { EgressOptions } from "./egress.js";
import { objectMeta } from "./metadata.js";

export const AGENT_INSTALL_CONTAINER = "sandbox-agent-install";
export const AGENT_VOLUME = "sandbox-agent";
export const AGENT_CREDENTIAL_VOLUME = "sandbox-agent-credential";
/** Where the credential's digest is mounted in the workload container. */
export const AGENT_CREDENTIAL_DIR = "/.sandbox-credential";
/** Keys of the agent's Secret. */
export const AgentSecretKeys = { token: "token", digest: "token.sha256" } as const;
/** How the gateway reaches agents; absent: loopback only (pods/portforward). */
export interface GatewayAccess {
  /** The gateway's namespace: its Pods there, labelled Labels.gateway, reach the agent port. */
  namespace: string;
  /** The key sandboxes' credentials derive from (deriveAgentToken), shared with the gateway. */
  agentKey: Buffer;
}

/** The operator image's non-root user (see Dockerfile). */
const OPERATOR_IMAGE_UID = 65532;

/** The name of a sandbox's agent Secret (sandbox names are at most 63 characters). */
export function agentSecretName(sandboxName: string): string {
  return `${sandboxName}-sandbox-agent`;
}

/** The Secret holding a new credential for the sandbox; immutable, owned by the Sandbox. */
export function desiredAgentSecret(sandbox: Sandbox, token: string): V1Secret {
  const metadata = objectMeta(sandbox, "agent-credential", {});
  metadata.name = agentSecretName(sandbox.metadata.name!);
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata,
    type: "Opaque",
    immutable: true,
    stringData: {
      [AgentSecretKeys.token]: token,
      [AgentSecretKeys.digest]: agentTokenDigest(token),
    },
  };
}

/** Copies the agent from the operator image into the agent volume; needs nothing but `cp`. */
export function agentInstallContainer(opts: EgressOptions): V1Container {
  return {
    name: AGENT_INSTALL_CONTAINER,
    image: opts.image,
    imagePullPolicy: opts.imagePullPolicy,
    command: ["cp", AGENT_IMAGE_PATH, AGENT_PATH],
    volumeMounts: [{ name: AGENT_VOLUME, mountPath: AGENT_DIR }],
    resources: {
      requests: { cpu: "10m", memory: "16Mi" },
      limits: { cpu: "200m", memory: "64Mi" },
    },
    securityContext: {
      runAsUser: OPERATOR_IMAGE_UID,
      runAsGroup: OPERATOR_IMAGE_UID,
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    },
  };
}

export function agentVolumes(sandbox: Sandbox): V1Volume[] {
  return [
    // The binary (~8 MB); the limit only guards against a runaway copy.
    { name: AGENT_VOLUME, emptyDir: { sizeLimit: "64Mi" } },
    {
      name: AGENT_CREDENTIAL_VOLUME,
      secret: {
        secretName: agentSecretName(sandbox.metadata.name!),
        // The digest only: the token never enters the Pod.
        items: [{ key: AgentSecretKeys.digest, path: AgentSecretKeys.digest }],
        defaultMode: 0o444,
      },
    },
  ];
}

export function agentMounts(): V1VolumeMount[] {
  return [
    { name: AGENT_VOLUME, mountPath: AGENT_DIR, readOnly: true },
    { name: AGENT_CREDENTIAL_VOLUME, mountPath: AGENT_CREDENTIAL_DIR, readOnly: true },
  ];
}

/**
 * The workload container's postStart: the agent, detached, serving on the
 * Pod's loopback, or on all its addresses when a gateway reaches it.
 */
export function agentLifecycle(gateway?: GatewayAccess): V1Lifecycle {
  return {
    postStart: {
      exec: {
        command: [
          AGENT_PATH,
          "--daemon",
          gateway ? `--listen=:${AGENT_PORT}` : `--listen=127.0.0.1:${AGENT_PORT}`,
          `--token-sha256-file=${AGENT_CREDENTIAL_DIR}/${AgentSecretKeys.digest}`,
        ],
      },
    },
  };
}
