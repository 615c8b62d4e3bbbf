// A running sandbox's egress policy changes on the real node. A name rule
// reaches the running sidecar through the downward-API file the kubelet
// rewrites (no restart of the workload); how long that takes on this kubelet
// is measured and printed. An address rule travels the same way: the firewall
// egress-init installs holds no policy, so nothing about the Pod changes.
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { OPERATOR_IMAGE } from "../support/docker.js";
import { eventually } from "../support/eventually.js";
import { kubectl, NODE_SANDBOX_IMAGE, NODE_TEST_RESOURCES } from "../support/node/pods.js";
import { STANDIN, type Standins, startStandins } from "../support/node/standins.js";
import { type RunningOperator, startOperator } from "../support/operator.js";
import { isReady, SandboxClient } from "../support/sandboxes.js";

const kc = kubeConfig();
const core = kc.makeApiClient(k8s.CoreV1Api);
let ns: Awaited<ReturnType<typeof testNamespace>>;
let sbx: SandboxClient;
let operator: RunningOperator;
let standins: Standins;

const ZONE = { "allowed.test": { A: [STANDIN.allowed] }, "later.test": { A: [STANDIN.denied] } };
const allowOnly = (...targets: string[]) => ({
  egress: {
    defaultAction: "deny" as const,
    rules: targets.map((target) => ({ action: "allow" as const, target })),
  },
});

beforeAll(async () => {
  standins = await startStandins(inject("nodeNetns"), inject("nodePodCidr"), ZONE, [
    "allowed.test",
    "later.test",
  ]);
  ns = await testNamespace(kc, "policy");
  sbx = new SandboxClient(kc, ns.name);
  operator = await startOperator({
    namespace: ns.name,
    user: "operator-0",
    egressImage: OPERATOR_IMAGE,
  });
  await sbx.create("live", {
    image: NODE_SANDBOX_IMAGE,
    resources: NODE_TEST_RESOURCES,
    command: ["sleep", "3600"],
    network: allowOnly("allowed.test"),
  });
  await sbx.waitFor("live", isReady, 120_000);
});
afterAll(async () => {
  await operator?.stop();
  await ns?.delete();
  await standins?.destroy();
});

const viaProxy = (url: string) =>
  kubectl([
    "exec",
    "-n",
    ns.name,
    "live",
    "-c",
    "sandbox",
    "--",
    "curl",
    "-sS",
    "-m",
    "3",
    "-o",
    "/dev/null",
    "-w",
    "%{http_code}",
    url,
  ]);
const workload = async () => {
  const pod = await core.readNamespacedPod({ name: "live", namespace: ns.name });
  const st = pod.status?.containerStatuses?.find((s) => s.name === "sandbox");
  return {
    uid: pod.metadata?.uid,
    restarts: st?.restartCount,
    startedAt: String(st?.state?.running?.startedAt),
  };
};

describe("policy changes on a running sandbox", () => {
  it("a name rule reaches the running sidecar through the downward API, without restarting the workload", async () => {
    expect((await viaProxy("http://later.test:8080/")).stdout).not.toBe("200");
    const before = await workload();
    const began = performance.now();
    await sbx.patchSpec("live", { network: allowOnly("allowed.test", "later.test") });
    await eventually(
      async () => expect((await viaProxy("http://later.test:8080/")).stdout).toBe("200"),
      {
        timeout: 120_000,
        interval: 250,
      },
    );
    const tookMs = Math.round(performance.now() - began);
    console.log(`name-rule change reached the sidecar in ${tookMs} ms (kubelet syncFrequency 10s)`);
    expect(await workload()).toEqual(before);
    expect(standins.connectionsTo(STANDIN.denied).filter((c) => c.port === 8080)).toHaveLength(1);
  });

  it("an address rule reaches the running sidecar the same way: no new Pod, no restart", async () => {
    // Straight to the address, not through the proxy: the lockdown redirects
    // the connection to the sidecar, which judges it by its original destination.
    const direct = () =>
      kubectl([
        ...["exec", "-n", ns.name, "live", "-c", "sandbox", "--", "curl", "-sS", "-m", "3"],
        ...["--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}"],
        `http://${STANDIN.denied}:8080/`,
      ]);
    expect((await direct()).stdout).not.toBe("200");
    const before = await workload();
    const began = performance.now();
    await sbx.patchSpec("live", {
      network: {
        egress: {
          defaultAction: "deny",
          rules: [
            { action: "allow", target: "allowed.test" },
            { action: "allow", target: `${STANDIN.denied}/32`, ports: [8080] },
          ],
        },
      },
    });
    await eventually(async () => expect((await direct()).stdout).toBe("200"), {
      timeout: 120_000,
      interval: 250,
    });
    const tookMs = Math.round(performance.now() - began);
    console.log(
      `address-rule change reached the sidecar in ${tookMs} ms (kubelet syncFrequency 10s)`,
    );
    expect(await workload()).toEqual(before);
    const events = await sbx.events("live");
    expect(events.some((e) => e.reason === "PodRecreated")).toBe(false);
  });
});
