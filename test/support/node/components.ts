// The node's Kubernetes components, each run inside the node's network
// namespace (nsenter --net only: they share the host's mount namespace, so the
// kubelet's volume mounts are what containerd and runc see):
//
//   kubelet      cgroupfs driver on the host's cgroup v1 hierarchy
//   kube-proxy   iptables mode, so Services work
//   kube-router  firewall only (--run-router=false --run-service-proxy=false):
//                the NetworkPolicy enforcer, with iptables + ipset
//   local-path   the dynamic provisioner of the `local-path` class (storage.ts)
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Started, startProcess } from "../processes.js";
import type { ContainerdPaths } from "./containerd.js";
import type { NodeNetwork } from "./network.js";

export interface NodeFiles {
  dir: string;
  binDir: string;
  kubeconfig: string;
  clientCaPath: string;
  name: string;
  cgroupRoot: string;
  net: NodeNetwork;
  containerd: ContainerdPaths;
  dnsServer: string;
  taints: string[];
}

/**
 * How the kubelet is configured for this host, and why:
 * - cgroupDriver cgroupfs: PID 1 is not systemd; cgroup v1 (hybrid) hierarchy.
 *   kubelet 1.34 still runs on cgroup v1 (failCgroupV1 defaults to false).
 * - cgroupRoot /sbxnode-<id>: every Pod cgroup under one tree of this node's
 *   own, which stopping removes (and a test checks).
 * - failSwapOn false: not needed while the VM has no swap, but a host that
 *   has some should still run the tests.
 * - imageGCHighThresholdPercent 100 and low eviction thresholds: images are
 *   imported, not pulled, and the shared disk's usage is not this node's
 *   business; GC or eviction would remove what cannot be pulled back.
 * - syncFrequency 10s (default 1m): the kubelet rewrites downward-API volumes
 *   on a Pod sync. An annotation change triggers one at once (~1 s from the
 *   Sandbox patch to the sidecar enforcing it, test/node/policy-update.test.ts);
 *   the periodic sync is the worst case.
 * - authentication by client certificate (the apiserver's kubelet-client
 *   certificate) and authorization by webhook: exec and logs work through the
 *   apiserver, and nothing else on the node's address (a Pod, say) can use the
 *   kubelet's API.
 * - podLogsDir, rootDir: under the node's directory, not /var/log or /var/lib.
 */
function kubeletConfig(f: NodeFiles): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${f.net.nodeIp}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
containerRuntimeEndpoint: unix://${f.containerd.socket}
cgroupDriver: cgroupfs
cgroupRoot: ${f.cgroupRoot}
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
failSwapOn: false
failCgroupV1: false
podLogsDir: ${join(f.dir, "pod-logs")}
staticPodPath: ""
resolvConf: ${join(f.dir, "resolv.conf")}
clusterDomain: cluster.local
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${f.clientCaPath}}
authorization:
  mode: Webhook
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
syncFrequency: 10s
nodeStatusUpdateFrequency: 5s
maxPods: 110
hairpinMode: hairpin-veth
rotateCertificates: false
serverTLSBootstrap: false
shutdownGracePeriod: 0s
`;
}

export function startKubelet(f: NodeFiles): Started {
  const configPath = join(f.dir, "kubelet.yaml");
  writeFileSync(configPath, kubeletConfig(f));
  // The Pods' resolver (the egress sidecar's upstream): a stand-in server a
  // test provides, or by default the Pods' gateway, where nothing answers, so
  // no lookup leaves this machine.
  writeFileSync(join(f.dir, "resolv.conf"), `nameserver ${f.dnsServer}\noptions ndots:1\n`);
  mkdirSync(join(f.dir, "pod-logs"), { recursive: true });
  return inNode(f, "kubelet", join(f.binDir, "kubelet"), [
    `--config=${configPath}`,
    `--kubeconfig=${f.kubeconfig}`,
    `--root-dir=${join(f.dir, "kubelet")}`,
    `--cert-dir=${join(f.dir, "kubelet-pki")}`,
    `--hostname-override=${f.name}`,
    `--node-ip=${f.net.nodeIp}`,
    "--node-labels=sandboxing.dev/test-node=true",
    ...(f.taints.length ? [`--register-with-taints=${f.taints.join(",")}`] : []),
    "--v=1",
  ]);
}

export function startKubeProxy(f: NodeFiles): Started {
  const configPath = join(f.dir, "kube-proxy.yaml");
  writeFileSync(
    configPath,
    `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: ${f.kubeconfig}}
hostnameOverride: ${f.name}
bindAddress: ${f.net.nodeIp}
clusterCIDR: ${f.net.podCidr}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# nf_conntrack_max is global (the host's): leave it, and the timeouts, alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false}
# No CAP_SYS_RESOURCE here: an OOM score below the current one cannot be set.
oomScoreAdj: 0
`,
  );
  return inNode(f, "kube-proxy", join(f.binDir, "kube-proxy"), [`--config=${configPath}`, "--v=1"]);
}

export function startKubeRouter(f: NodeFiles): Started {
  return inNode(f, "kube-router", join(f.binDir, "kube-router"), [
    `--kubeconfig=${f.kubeconfig}`,
    `--hostname-override=${f.name}`,
    "--run-firewall=true",
    "--run-router=false",
    "--run-service-proxy=false",
    "--run-loadbalancer=false",
    "--enable-cni=false",
    "--health-port=20244",
    "--metrics-port=0",
    "--v=1",
  ]);
}

export function inNode(f: NodeFiles, name: string, bin: string, args: string[]): Started {
  return startProcess(
    name,
    "nsenter",
    [`--net=/run/netns/${f.net.netns}`, "--", bin, ...args],
    f.dir,
  );
}
