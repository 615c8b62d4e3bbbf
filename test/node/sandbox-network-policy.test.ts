// A sandbox's own fences on the real node (its NetworkPolicy, enforced by
// kube-router, and its Pod firewall): another Pod reaches only the ports the
// sandbox declares, a declared port is reachable through the sandbox's
// Service, and the sandbox reaches another Pod only where its policy allows
// (an address rule: that address and port) and the node not at all.
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { OPERATOR_IMAGE } from "../support/docker.js";
import { eventually } from "../support/eventually.js";
import {
  barePod,
  isRunningReady,
  kubectl,
  NODE_SANDBOX_IMAGE,
  NODE_TEST_RESOURCES,
  waitPod,
} from "../support/node/pods.js";
import { type RunningOperator, startOperator } from "../support/operator.js";
import { isReady, SandboxClient } from "../support/sandboxes.js";

const kc = kubeConfig();
const core = kc.makeApiClient(k8s.CoreV1Api);
let ns: Awaited<ReturnType<typeof testNamespace>>;
let operator: RunningOperator;
let sandboxIp: string;
let peerIp: string;
let serviceIp: string;

/** An HTTP server answering its port number on each of `ports`. */
const serve = (ports: number[]) => [
  "python3",
  "-c",
  [
    "import http.server, threading",
    "class H(http.server.BaseHTTPRequestHandler):",
    "    def do_GET(self):",
    "        b = str(self.server.server_port).encode(); self.send_response(200); self.end_headers(); self.wfile.write(b)",
    `for p in ${JSON.stringify(ports)}: threading.Thread(target=http.server.HTTPServer(("0.0.0.0", p), H).serve_forever).start()`,
  ].join("\n"),
];

beforeAll(async () => {
  ns = await testNamespace(kc, "sbx-netpol");
  operator = await startOperator({
    namespace: ns.name,
    user: "operator-2",
    egressImage: OPERATOR_IMAGE,
  });
  for (const [name, command] of [
    ["client", ["sleep", "3600"]],
    ["peer", serve([8000, 8001])],
  ] as const)
    await core.createNamespacedPod({ namespace: ns.name, body: barePod(name, [...command]) });
  const peer = await waitPod(core, ns.name, "peer", isRunningReady, 120_000);
  peerIp = peer.status!.podIP!;
  await waitPod(core, ns.name, "client", isRunningReady, 120_000);
  const sbx = new SandboxClient(kc, ns.name);
  await sbx.create("srv", {
    image: NODE_SANDBOX_IMAGE,
    resources: NODE_TEST_RESOURCES,
    command: serve([8080, 9090]),
    ports: [{ name: "http", port: 8080 }],
    network: {
      egress: {
        defaultAction: "deny",
        rules: [{ action: "allow", target: `${peerIp}/32`, ports: [8000] }],
      },
    },
  });
  await sbx.waitFor(
    "srv",
    (s) => {
      isReady(s);
      expect(s.status?.phase).toBe("Running");
    },
    180_000,
  );
  sandboxIp = (await sbx.pod("srv"))!.status!.podIP!;
  serviceIp = (await core.readNamespacedService({ name: "srv", namespace: ns.name })).spec!
    .clusterIP!;
}, 300_000);
afterAll(async () => {
  await operator?.stop();
  await ns?.delete();
});

const curlFrom = async (pod: string, container: string, url: string) =>
  (
    await kubectl([
      ...["exec", "-n", ns.name, pod, "-c", container, "--"],
      ...["curl", "-sS", "-m", "3", "--noproxy", "*", "-o", "-", "-w", " %{http_code}", url],
    ])
  ).stdout.trim();

describe("a sandbox's NetworkPolicy on the real node", () => {
  it("another Pod reaches the declared port, directly and through the Service, and no other", async () => {
    await eventually(
      async () =>
        expect(await curlFrom("client", "main", `http://${serviceIp}:8080/`)).toBe("8080 200"),
      { timeout: 60_000, interval: 1000 },
    );
    expect(await curlFrom("client", "main", `http://${sandboxIp}:8080/`)).toBe("8080 200");
    // The workload listens on 9090 too (checked from inside), but it is not declared.
    expect(await curlFrom("srv", "sandbox", "http://127.0.0.1:9090/")).toBe("9090 200");
    expect(await curlFrom("client", "main", `http://${sandboxIp}:9090/`)).not.toMatch(/200$/);
  });

  it("the sandbox reaches another Pod only where its policy allows, and not the node", async () => {
    // Both peer ports answer other Pods.
    expect(await curlFrom("client", "main", `http://${peerIp}:8001/`)).toBe("8001 200");
    expect(await curlFrom("srv", "sandbox", `http://${peerIp}:8000/`)).toBe("8000 200");
    expect(await curlFrom("srv", "sandbox", `http://${peerIp}:8001/`)).not.toMatch(/200$/);
    // The node: its InternalIP, where the kubelet serves 10250.
    const node = await core.readNode({ name: inject("nodeName") });
    const gateway = node.status!.addresses!.find((a) => a.type === "InternalIP")!.address;
    const fromClient = await kubectl([
      ...["exec", "-n", ns.name, "client", "-c", "main", "--"],
      ...[
        "curl",
        "-sk",
        "-m",
        "3",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        `https://${gateway}:10250/healthz`,
      ],
    ]);
    expect(fromClient.stdout).not.toBe("000"); // the kubelet answers other Pods (401/403)
    const fromSandbox = await kubectl([
      ...["exec", "-n", ns.name, "srv", "-c", "sandbox", "--"],
      ...[
        "curl",
        "-sk",
        "-m",
        "3",
        "--noproxy",
        "*",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        `https://${gateway}:10250/healthz`,
      ],
    ]);
    expect(fromSandbox.stdout).toBe("000");
  });
});
