// The workload Pod of a sandbox, hardened by default: non-root, no capabilities,
// no privilege escalation, seccomp RuntimeDefault, no service-account token, no
// service links, requests equal to limits.
import type { V1Container, V1EnvVar, V1Pod, V1PodSpec, V1Volume } from "@kubernetes/client-node";
import type { Sandbox } from "../../api/sandbox.js";
import { keyOf } from "../../kube/object-key.js";
import { POLICY_CA_ANNOTATION } from "../../policy-server/contract.js";
import {
  agentInstallContainer,
  agentLifecycle,
  agentMounts,
  agentVolumes,
  type GatewayAccess,
} from "./agent.js";
import {
  type EgressOptions,
  egressInitContainers,
  egressVolumes,
  POLICY_ANNOTATION,
  policyAnnotation,
  proxyEnv,
} from "./egress.js";
import { objectMeta } from "./metadata.js";
import { extraMounts, workspaceVolume } from "./workspace.js";

export const WORKLOAD_CONTAINER = "sandbox";
export const DEFAULT_UID = 1000;
export const DEFAULT_WORKDIR = "/workspace";

/**
 * The grace period of every Pod deletion by the operator (suspend, recreate,
 * removal): SIGTERM, then SIGKILL this much later. Never 0: a zero grace is a
 * force deletion, which removes the Pod object at once while the kubelet is
 * still stopping its containers; "Pod gone" would then not mean "stopped",
 * and a suspended sandbox's workload could keep running (and writing to its
 * workspace) after the Sandbox says Suspended, even beside the resumed one on
 * the same PVC. With a grace period the kubelet removes the object only once
 * every container has stopped and the volumes are unmounted. Short, because a
 * sandbox's shell or agent often ignores SIGTERM (as PID 1 without a handler).
 */
export const POD_STOP_GRACE_SECONDS = 2;

export function desiredPod(
  sandbox: Sandbox,
  egress: EgressOptions,
  gateway?: GatewayAccess,
): V1Pod {
  const spec = podSpec(sandbox, egress, gateway);
  const policy = sandbox.spec.network.egress;
  // The hash covers what needs a new Pod: the spec. The firewall the init
  // container installs holds no policy, so no egress rule (name or address) or
  // defaultAction needs a new Pod: they reach the running sidecar through the
  // annotation instead.
  const metadata = objectMeta(sandbox, "workload", { spec });
  metadata.annotations![POLICY_ANNOTATION] = policyAnnotation(policy);
  if (egress.channel) metadata.annotations![POLICY_CA_ANNOTATION] = egress.channel.caPem;
  return { apiVersion: "v1", kind: "Pod", metadata, spec };
}

function podSpec(sandbox: Sandbox, egress: EgressOptions, gateway?: GatewayAccess): V1PodSpec {
  const { security, resources } = sandbox.spec;
  const uid = security.runAsUser ?? DEFAULT_UID;
  const gid = security.runAsGroup ?? DEFAULT_UID;
  const limits = { cpu: String(resources.cpu), memory: String(resources.memory) };
  const workingDir = sandbox.spec.workingDir ?? DEFAULT_WORKDIR;
  // The persistent workspace (a PVC) replaces the scratch emptyDir where they
  // would share a path; elsewhere the working directory stays scratch.
  const persistent = workspaceVolume(sandbox);
  const scratchWorkdir = persistent?.mount.mountPath !== workingDir;
  const extra = extraMounts(sandbox.spec.mounts);

  const workload: V1Container = {
    name: WORKLOAD_CONTAINER,
    image: sandbox.spec.image,
    command: sandbox.spec.command,
    args: sandbox.spec.args,
    workingDir,
    env: [...proxyEnv(), ...(sandbox.spec.env?.map(envVar) ?? [])],
    // No containerPorts: they are informational, and leaving them out lets ports
    // change (Service, NetworkPolicy) without recreating the Pod.
    resources: { requests: limits, limits },
    securityContext: {
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ["ALL"] },
      readOnlyRootFilesystem: security.readOnlyRootFilesystem,
      runAsNonRoot: uid !== 0,
      runAsUser: uid,
      runAsGroup: gid,
    },
    volumeMounts: [
      ...(scratchWorkdir ? [{ name: "workspace", mountPath: workingDir }] : []),
      ...(persistent ? [persistent.mount] : []),
      { name: "tmp", mountPath: "/tmp" },
      ...extra.mounts,
      ...agentMounts(),
    ],
    // The data plane: the agent starts beside the entrypoint (./agent.ts).
    lifecycle: agentLifecycle(gateway),
  };

  const volumes: V1Volume[] = [
    ...(scratchWorkdir ? [{ name: "workspace", emptyDir: {} }] : []),
    ...(persistent ? [persistent.volume] : []),
    { name: "tmp", emptyDir: {} },
    ...extra.volumes,
    ...egressVolumes(egress.channel),
    ...agentVolumes(sandbox),
  ];

  return {
    // The firewall first, then the sidecar; the kubelet starts what follows only
    // once the sidecar's startup probe passes, so no packet leaves unjudged.
    // Last, the agent's copy into its volume (./agent.ts).
    initContainers: [
      ...egressInitContainers(keyOf(sandbox), egress),
      agentInstallContainer(egress),
    ],
    containers: [workload],
    volumes,
    // A sandbox runs once: its exit is the result, recorded in status.
    restartPolicy: "Never",
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    hostNetwork: false,
    hostPID: false,
    hostIPC: false,
    terminationGracePeriodSeconds: 10,
    runtimeClassName: security.runtimeClassName,
    securityContext: {
      runAsNonRoot: uid !== 0,
      runAsUser: uid,
      runAsGroup: gid,
      fsGroup: gid,
      seccompProfile: { type: "RuntimeDefault" },
    },
  };
}

function envVar(env: NonNullable<Sandbox["spec"]["env"]>[number]): V1EnvVar {
  if (env.valueFrom) {
    const ref = env.valueFrom.secretKeyRef;
    return {
      name: env.name,
      valueFrom: { secretKeyRef: { name: ref.name, key: ref.key, optional: ref.optional } },
    };
  }
  return { name: env.name, value: env.value ?? "" };
}
