// The real node itself, before any operator: it registers Ready with the
// versions we built, runs Pods (logs, exec), Services work through kube-proxy,
// NetworkPolicy is enforced by kube-router, and stopping a node leaves nothing
// behind on the host.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";
import { PAUSE_IMAGE } from "../support/node/images.js";
import { startNode } from "../support/node/index.js";
import { barePod, inNode, isRunningReady, kubectl, waitPod } from "../support/node/pods.js";

const kc = kubeConfig();
const core = kc.makeApiClient(k8s.CoreV1Api);
const networking = kc.makeApiClient(k8s.NetworkingV1Api);
let ns: Awaited<ReturnType<typeof testNamespace>>;

beforeAll(async () => {
  ns = await testNamespace(kc, "node");
});
afterAll(async () => {
  await ns?.delete();
});

describe("the real node", () => {
  it("registers Ready, running kubelet 1.34 on containerd with cgroupfs", async () => {
    const node = await core.readNode({ name: inject("nodeName") });
    expect(node.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
    expect(node.status?.nodeInfo?.kubeletVersion).toMatch(/^v1\.34\./);
    expect(node.status?.nodeInfo?.kubeProxyVersion ?? "").not.toBe("v0.0.0-master");
    expect(node.status?.nodeInfo?.containerRuntimeVersion).toMatch(/^containerd:\/\/1\.6\./);
    expect(node.spec?.taints ?? []).toEqual([]);
    const internal = node.status?.addresses?.find((a) => a.type === "InternalIP")?.address;
    expect(internal).toMatch(/^10\.213\.\d+\.2$/);
  });

  it("runs a Pod for real: its output is in kubectl logs, exec runs in it", async () => {
    await core.createNamespacedPod({
      namespace: ns.name,
      // (Kubernetes itself reads "$$" and "$(x)" in a command: backticks instead.)
      body: barePod("echo", [
        "sh",
        "-c",
        "echo hello from `hostname`, pid `cut -d' ' -f1 /proc/self/stat`",
      ]),
    });
    const done = await waitPod(core, ns.name, "echo", (p) =>
      expect(p.status?.phase).toBe("Succeeded"),
    );
    expect(done.status?.podIP).toMatch(/^10\.214\./);
    const logs = await kubectl(["logs", "-n", ns.name, "echo"]);
    expect(logs.stdout).toMatch(/^hello from echo, pid \d+\n$/);

    await core.createNamespacedPod({
      namespace: ns.name,
      body: barePod("shell", ["sleep", "3600"]),
    });
    await waitPod(core, ns.name, "shell", isRunningReady);
    const ran = await kubectl([
      "exec",
      "-n",
      ns.name,
      "shell",
      "--",
      "sh",
      "-c",
      "id -u; cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    expect(ran.stderr).toBe("");
    expect(ran.stdout).toBe("1000\nsleep 3600 ");
  });

  it("serves a ClusterIP Service through kube-proxy's iptables rules", async () => {
    await core.createNamespacedPod({
      namespace: ns.name,
      body: barePod("web", ["python3", "-m", "http.server", "8080", "--directory", "/etc"]),
    });
    await core.createNamespacedService({
      namespace: ns.name,
      body: {
        metadata: { name: "web" },
        spec: { selector: { app: "web" }, ports: [{ port: 80, targetPort: 8080 }] },
      },
    });
    await waitPod(core, ns.name, "web", isRunningReady);
    const svc = await core.readNamespacedService({ name: "web", namespace: ns.name });
    const clusterIp = svc.spec?.clusterIP;
    expect(clusterIp).toMatch(/^10\.96\./);
    await eventually(async () => {
      const rules = await inNode("iptables-save", ["-t", "nat"]);
      expect(rules.stdout).toContain(
        `-d ${clusterIp}/32 -p tcp -m comment --comment "${ns.name}/web cluster IP"`,
      );
    });
    await eventually(
      async () => {
        const got = await kubectl([
          "exec",
          "-n",
          ns.name,
          "shell",
          "--",
          "curl",
          "-sS",
          "-m",
          "3",
          `http://${clusterIp}/hostname`,
        ]);
        expect(got.stdout).toBe("web\n");
      },
      { timeout: 30_000, interval: 500 },
    );
  });

  it("enforces NetworkPolicy (kube-router): an ingress deny, then an allow by label", async () => {
    await core.createNamespacedPod({
      namespace: ns.name,
      body: barePod(
        "target",
        ["python3", "-m", "http.server", "8080", "--directory", "/etc"],
        {},
        { role: "target" },
      ),
    });
    await core.createNamespacedPod({
      namespace: ns.name,
      body: barePod("friend", ["sleep", "3600"], {}, { role: "friend" }),
    });
    await core.createNamespacedPod({
      namespace: ns.name,
      body: barePod("stranger", ["sleep", "3600"], {}, { role: "stranger" }),
    });
    const target = await waitPod(core, ns.name, "target", isRunningReady);
    await waitPod(core, ns.name, "friend", isRunningReady);
    await waitPod(core, ns.name, "stranger", isRunningReady);
    const url = `http://${target.status?.podIP}:8080/hostname`;
    const fetchFrom = (pod: string) =>
      kubectl([
        "exec",
        "-n",
        ns.name,
        pod,
        "--",
        "curl",
        "-sS",
        "-m",
        "2",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        url,
      ]);

    expect((await fetchFrom("friend")).stdout).toBe("200");
    expect((await fetchFrom("stranger")).stdout).toBe("200");
    await networking.createNamespacedNetworkPolicy({
      namespace: ns.name,
      body: {
        metadata: { name: "deny-target" },
        spec: {
          podSelector: { matchLabels: { role: "target" } },
          policyTypes: ["Ingress"],
          ingress: [],
        },
      },
    });
    await eventually(async () => expect((await fetchFrom("friend")).code).not.toBe(0), {
      timeout: 30_000,
      interval: 500,
    });
    expect((await fetchFrom("stranger")).stdout).toBe("000"); // no HTTP answer at all

    await networking.createNamespacedNetworkPolicy({
      namespace: ns.name,
      body: {
        metadata: { name: "allow-friend" },
        spec: {
          podSelector: { matchLabels: { role: "target" } },
          policyTypes: ["Ingress"],
          ingress: [
            {
              _from: [{ podSelector: { matchLabels: { role: "friend" } } }],
              ports: [{ port: 8080 }],
            },
          ],
        },
      },
    });
    await eventually(async () => expect((await fetchFrom("friend")).stdout).toBe("200"), {
      timeout: 30_000,
      interval: 500,
    });
    // Still denied for a Pod the policy does not name.
    expect((await fetchFrom("stranger")).stdout).toBe("000"); // no HTTP answer at all
  });
});

describe("stopping a node", () => {
  it("leaves nothing behind: containers, cgroups, netns, veths, iptables chains, mounts", async () => {
    const provided = inject("controlPlane");
    const cp = { ...provided, kubeConfig: () => kc };
    // A second node of this test's own, tainted so no other test's Pod lands on it.
    const taint = "sandboxing.dev/leave-nothing=true:NoSchedule";
    const node = await startNode(cp, { taints: [taint] });
    let stopped = false;
    try {
      expect(node.leftovers().length).toBeGreaterThan(0); // the check sees a running node
      await core.createNamespacedPod({
        namespace: ns.name,
        body: {
          metadata: { name: "on-second-node" },
          spec: {
            nodeName: node.name,
            tolerations: [{ key: "sandboxing.dev/leave-nothing", operator: "Exists" }],
            restartPolicy: "Never",
            automountServiceAccountToken: false,
            containers: [{ name: "main", image: PAUSE_IMAGE }],
          },
        },
      });
      await waitPod(core, ns.name, "on-second-node", isRunningReady);
      const running = node.leftovers();
      expect(running.some((l) => l.startsWith("process"))).toBe(true);
      expect(running.some((l) => l.startsWith("mount"))).toBe(true);
      expect(running.some((l) => l.startsWith("cgroup"))).toBe(true);
      expect(running).toContain(`netns ${node.net.netns}`);
      expect(running).toContain(`link ${node.net.hostInterface}`);
      // Its rules are in its own namespace, none in the host's tables.
      const nodeRules = node.exec("iptables-save", []);
      expect(nodeRules).toContain(":KUBE-SERVICES");
      expect(nodeRules).toContain(":KUBE-ROUTER-FORWARD");
      expect(running.filter((l) => l.startsWith("host firewall"))).toEqual([]);

      // Its own containerd root (the shared one is the first node's): its
      // containers, sandboxes and snapshots live there, and its kubelet's Pod dirs.
      expect(node.containerd.root.startsWith(node.dir)).toBe(true);
      expect(
        readdirSync(join(node.containerd.root, "io.containerd.grpc.v1.cri/sandboxes")),
      ).not.toEqual([]);
      await node.stop();
      stopped = true;
      expect(node.leftovers()).toEqual([]);
      expect(existsSync(node.dir), `${node.dir} removed`).toBe(false);
    } finally {
      if (!stopped) await node.stop();
      // Its Pod's kubelet is gone: nothing else would ever confirm the deletion.
      await core
        .deleteNamespacedPod({ name: "on-second-node", namespace: ns.name, gracePeriodSeconds: 0 })
        .catch(() => undefined);
    }
    // The shared node is unaffected.
    const shared = await core.readNode({ name: inject("nodeName") });
    expect(shared.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
    // Starting a second node waits up to 150 s for kube-proxy's and kube-router's
    // chains (startNode), which the default 120 s test timeout cut short under load.
  }, 300_000);
});
