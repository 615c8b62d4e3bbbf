// The sandbox's NetworkPolicy: the outer fence around the egress sidecar.
// Ingress reaches only declared ports, and the agent's port from the gateway's
// Pods in the gateway's namespace when the operator names one. Egress reaches cluster DNS, and — only
// when the egress policy can allow something — public addresses, never the
// private, link-local or metadata ranges unless a CIDR rule names them. Names
// cannot be expressed here; the sidecar judges those.
import type {
  V1NetworkPolicy,
  V1NetworkPolicyEgressRule,
  V1NetworkPolicyPort,
} from "@kubernetes/client-node";
import { Labels } from "../../api/labels.js";
import type { Sandbox } from "../../api/sandbox.js";
import { AGENT_PORT } from "../../dataplane/protocol.js";
import { isAddressTarget } from "../../egress/contract.js";
import type { PolicyChannel } from "./egress.js";
import { objectMeta, selectorLabels } from "./metadata.js";

/** Ranges a sandbox never reaches through a catch-all rule. */
export const PRIVATE_IPV4 = [
  "10.0.0.0/8",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "100.64.0.0/10", // carrier-grade NAT, often used for pod/service networks
  "169.254.0.0/16", // link-local, including the cloud metadata address
  "127.0.0.0/8",
];
export const PRIVATE_IPV6 = ["fc00::/7", "fe80::/10", "::1/128"];

/** Where cluster DNS runs; CoreDNS in kind and most distributions carries this label. */
export const CLUSTER_DNS_PEER = {
  namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } },
  podSelector: { matchLabels: { "k8s-app": "kube-dns" } },
};

/**
 * The gateway's Pods: both selectors in one peer, so a Pod must be in that
 * namespace (its immutable name label) and carry the gateway label. A label
 * alone could be put on a Pod anywhere; the namespace alone would admit
 * anything else running there.
 */
export function gatewayPeer(namespace: string) {
  return {
    namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": namespace } },
    podSelector: { matchLabels: { [Labels.gateway]: "true" } },
  };
}

/**
 * `channel`: the policy endpoint the sidecar may reach; `gatewayNamespace`:
 * where the gateway runs (the operator's --gateway-namespace), if it does.
 */
export function desiredNetworkPolicy(
  sandbox: Sandbox,
  channel?: PolicyChannel,
  gatewayNamespace?: string,
): V1NetworkPolicy {
  const spec = {
    podSelector: { matchLabels: selectorLabels(sandbox) },
    policyTypes: ["Ingress", "Egress"],
    ingress: [
      ...(sandbox.spec.ports?.length
        ? [{ ports: sandbox.spec.ports.map((p) => ({ protocol: "TCP", port: p.port })) }]
        : []),
      ...(gatewayNamespace
        ? [
            {
              from: [gatewayPeer(gatewayNamespace)],
              ports: [{ protocol: "TCP", port: AGENT_PORT }],
            },
          ]
        : []),
    ],
    egress: [...egressRules(sandbox), ...(channel ? [channelRule(channel)] : [])],
  };
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: objectMeta(sandbox, "network-policy", spec),
    spec,
  };
}

function egressRules(sandbox: Sandbox): V1NetworkPolicyEgressRule[] {
  const { defaultAction, rules = [] } = sandbox.spec.network.egress;
  const dns: V1NetworkPolicyEgressRule = {
    to: [CLUSTER_DNS_PEER],
    ports: [
      { protocol: "UDP", port: 53 },
      { protocol: "TCP", port: 53 },
    ],
  };
  const out: V1NetworkPolicyEgressRule[] = [dns];

  // CIDR and IP rules that allow: let them through as written (they may name private ranges).
  for (const rule of rules) {
    if (rule.action !== "allow" || !isAddressTarget(rule.target)) continue;
    out.push({ to: [{ ipBlock: { cidr: asCidr(rule.target) } }], ports: tcpPorts(rule.ports) });
  }

  // Name rules (or allow-by-default) need public addresses the names resolve to.
  const needsPublic =
    defaultAction === "allow" ||
    rules.some((r) => r.action === "allow" && !isAddressTarget(r.target));
  if (needsPublic) {
    out.push({
      to: [
        { ipBlock: { cidr: "0.0.0.0/0", except: PRIVATE_IPV4 } },
        { ipBlock: { cidr: "::/0", except: PRIVATE_IPV6 } },
      ],
    });
  }
  return out;
}

/**
 * The sidecar's way to its policy endpoint. The fence opens it for the Pod;
 * inside the Pod the lockdown narrows it to the sidecar's UID.
 */
function channelRule(c: PolicyChannel): V1NetworkPolicyEgressRule {
  return {
    to: [c.peer ?? { ipBlock: { cidr: asCidr(c.host) } }],
    ports: [{ protocol: "TCP", port: c.port }],
  };
}

function tcpPorts(ports: number[] | undefined): V1NetworkPolicyPort[] | undefined {
  return ports?.length ? ports.map((port) => ({ protocol: "TCP", port })) : undefined;
}

function asCidr(target: string): string {
  if (target.includes("/")) return target;
  return target.includes(":") ? `${target}/128` : `${target}/32`;
}
