// The pod backend's live policy channel on the real node: the controller (a
// process on the host here) serves the policy endpoint on the host's address
// on the node's link, which sandbox Pods reach through the node like an
// operator Pod's address (see test/support/node/README-less note in
// src/egress/README.md, "The channel"). Proven here:
//   - a running sandbox gets a policy change within a second, acknowledged,
//     with its workload untouched (same Pod, same containers, no restart);
//   - the workload cannot reach the endpoint (directly, or through the
//     sidecar's proxy even when an address rule opens the address), cannot
//     read the token (no mount, no shared process namespace);
//   - a token copied out of the sidecar fetches only its own sandbox's
//     policy and stops working when its Pod is replaced;
//   - the channel survives a controller restart (the sidecar redials);
//   - a warm pod-backend claim with name rules gets its policy at claim time,
//     Ready only once applied, and the escape attempts fail on it.
import * as k8s from "@kubernetes/client-node";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ConditionType } from "../../src/api/conditions.js";
import { Labels } from "../../src/api/labels.js";
import { podLiveEgress } from "../../src/claim/warm.js";
import {
  POLICY_APPLIED_ANNOTATION,
  POLICY_TOKEN_FILE,
  policyHash,
} from "../../src/policy-server/contract.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { OPERATOR_IMAGE } from "../support/docker.js";
import { eventually } from "../support/eventually.js";
import {
  asWorkloadIn,
  containerPid,
  kubectl,
  NODE_SANDBOX_IMAGE,
  NODE_TEST_RESOURCES,
  podFirewall,
} from "../support/node/pods.js";
import { STANDIN, type Standins, startStandins } from "../support/node/standins.js";
import { type RunningOperator, startOperator, startPools } from "../support/operator.js";
import { type PolicyTls, policyTls } from "../support/policy-tls.js";
import { PoolClient, type StoredClaim } from "../support/pools.js";
import { freePort } from "../support/processes.js";
import { condition, isReady, SandboxClient } from "../support/sandboxes.js";

const kc = kubeConfig();
const core = kc.makeApiClient(k8s.CoreV1Api);
let ns: Awaited<ReturnType<typeof testNamespace>>;
let sbx: SandboxClient;
let api: PoolClient;
let operator: RunningOperator;
let pools: Awaited<ReturnType<typeof startPools>>;
let standins: Standins;
let tls: PolicyTls;
let hostIp: string;
let port: number;
let agent: Agent;

const ZONE = {
  "allowed.test": { A: [STANDIN.allowed] },
  "later.test": { A: [STANDIN.denied] },
  "denied.test": { A: [STANDIN.denied] },
};
const allowOnly = (...targets: string[]) => ({
  egress: {
    defaultAction: "deny" as const,
    rules: targets.map((target) => ({ action: "allow" as const, target })),
  },
});

const POLICY_SERVICE_NAME = "sandbox-operator-policy.sandbox-system.svc";

const startController = () =>
  startOperator({
    namespace: ns.name,
    user: "operator-0",
    egressImage: OPERATOR_IMAGE,
    policyChannel: {
      listen: { host: hostIp, port },
      // As the chart runs it: dialed by address, the certificate checked
      // against the Service's name (it names no address).
      endpoint: { host: hostIp, port, serverName: POLICY_SERVICE_NAME },
      tls,
    },
  });

beforeAll(async () => {
  hostIp = inject("nodeHostIp");
  port = await freePort();
  tls = policyTls([], [POLICY_SERVICE_NAME]);
  agent = new Agent({ connect: { ca: tls.ca, servername: POLICY_SERVICE_NAME } });
  standins = await startStandins(inject("nodeNetns"), inject("nodePodCidr"), ZONE, [
    "allowed.test",
    "later.test",
    "denied.test",
  ]);
  ns = await testNamespace(kc, "polchan");
  sbx = new SandboxClient(kc, ns.name);
  api = new PoolClient(kc, ns.name);
  operator = await startController();
  await sbx.create("live", {
    image: NODE_SANDBOX_IMAGE,
    resources: NODE_TEST_RESOURCES,
    command: ["sleep", "3600"],
    network: allowOnly("allowed.test"),
  });
  // Ready only once the sidecar acknowledged the policy over the channel.
  await sbx.waitFor("live", isReady, 150_000);
}, 240_000);
afterAll(async () => {
  await pools?.stop();
  await operator?.stop();
  await ns?.delete();
  await standins?.destroy();
  await agent?.close();
});

const inWorkload = (pod: string, ...argv: string[]) =>
  kubectl(["exec", "-n", ns.name, pod, "-c", "sandbox", "--", ...argv]);
const viaProxy = (pod: string, url: string) =>
  inWorkload(pod, "curl", "-sS", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}", url);
const workload = async (name: string) => {
  const pod = await core.readNamespacedPod({ name, namespace: ns.name });
  const ids = [
    ...(pod.status?.initContainerStatuses ?? []),
    ...(pod.status?.containerStatuses ?? []),
  ].map((s) => `${s.name}=${s.containerID}/${s.restartCount}`);
  return { uid: pod.metadata?.uid, containers: ids.sort() };
};
const applied = async (name: string) =>
  (await core.readNamespacedPod({ name, namespace: ns.name })).metadata?.annotations?.[
    POLICY_APPLIED_ANNOTATION
  ];

describe("the live policy channel on the real node", () => {
  it("delivers a policy change to a running sandbox within a second, acknowledged, without restarting it", async () => {
    expect(await applied("live")).toBe(policyHash(allowOnly("allowed.test").egress));
    expect((await viaProxy("live", "http://allowed.test:8080/")).stdout).toBe("200");
    expect((await viaProxy("live", "http://later.test:8080/")).stdout).not.toBe("200");
    const before = await workload("live");
    const next = allowOnly("later.test");
    const began = performance.now();
    await sbx.patchSpec("live", { network: next });
    const ackMs = await eventually(
      async () => {
        expect(await applied("live")).toBe(policyHash(next.egress));
        return performance.now() - began;
      },
      { timeout: 10_000, interval: 10 },
    );
    const readyMs = await eventually(
      async () => {
        const s = (await sbx.get("live"))!;
        expect(s.status?.observedGeneration).toBe(s.metadata.generation);
        expect(condition(s, ConditionType.EgressReady)?.status).toBe("True");
        return performance.now() - began;
      },
      { timeout: 10_000, interval: 10 },
    );
    const useMs = await eventually(
      async () => {
        expect((await viaProxy("live", "http://later.test:8080/")).stdout).toBe("200");
        return performance.now() - began;
      },
      { timeout: 10_000, interval: 20 },
    );
    // Four more changes, alternating: how long from the Sandbox patch to the
    // sidecar applying it (its own log line) and to the acknowledgement on the Pod.
    const acks = [ackMs];
    const sent: { hash: string; at: number }[] = [];
    for (let i = 0; i < 4; i++) {
      const p = i < 3 ? allowOnly("later.test", `x${i}.test`) : allowOnly("later.test");
      const t = performance.now();
      const wall = Date.now();
      await sbx.patchSpec("live", { network: p });
      sent.push({ hash: policyHash(p.egress), at: wall });
      acks.push(
        await eventually(
          async () => {
            expect(await applied("live")).toBe(policyHash(p.egress));
            return performance.now() - t;
          },
          { timeout: 10_000, interval: 10 },
        ),
      );
    }
    const logs = await kubectl(["logs", "-n", ns.name, "live", "-c", "egress"]);
    const appliedAt = new Map<string, number>();
    for (const line of logs.stdout.split("\n")) {
      if (!line.includes("applied from the channel")) continue;
      const j = JSON.parse(line) as { hash: string; time: string | number };
      appliedAt.set(j.hash, new Date(j.time).getTime());
    }
    const applyMs = sent.map((s) => (appliedAt.get(s.hash) ?? Number.NaN) - s.at);
    const sorted = [...acks].sort((a, b) => a - b);
    console.log(
      `policy change -> acknowledged on the Pod: ${acks.map((a) => a.toFixed(0)).join(", ")} ms (median ${sorted[2]!.toFixed(0)}); ` +
        `-> applied by the sidecar (its log, ms clock): ${applyMs.join(", ")} ms; ` +
        `first change: EgressReady at the new generation ${readyMs.toFixed(0)} ms, first allowed request through kubectl exec ${useMs.toFixed(0)} ms`,
    );
    for (const ms of applyMs) expect(ms).toBeLessThan(1000);
    for (const ms of acks) expect(ms).toBeLessThan(1000);
    expect((await viaProxy("live", "http://allowed.test:8080/")).stdout).not.toBe("200");
    expect(await workload("live")).toEqual(before);
  });

  it("keeps the workload away from the endpoint and the token", async () => {
    const pod = (await sbx.pod("live"))!;
    const pid = await containerPid(pod, "sandbox");
    // Directly from the workload's network namespace as its UID: the lockdown refuses it.
    const direct = await asWorkloadIn(pid, [
      "curl",
      "-sS",
      "-k",
      "-m",
      "3",
      "--noproxy",
      "*",
      `https://${hostIp}:${port}/v1/policy`,
    ]);
    expect(direct.code, direct.stdout).not.toBe(0);
    // Refused by the firewall, or redirected to the sidecar, which resets a
    // connection to the endpoint instead of dialing it; never a TLS session with it.
    expect(direct.stderr).toMatch(
      /Couldn't connect|refused|unreachable|prohibited|timed out|Connection reset/i,
    );
    // Through kubectl exec in the container too (the Pod's own view).
    const inPod = await inWorkload(
      "live",
      "curl",
      "-sS",
      "-k",
      "-m",
      "3",
      "--noproxy",
      "*",
      `https://${hostIp}:${port}/`,
    );
    expect(inPod.code).not.toBe(0);
    // No token in the workload's filesystem, and no sidecar process to reach one through /proc.
    const ls = await inWorkload(
      "live",
      "sh",
      "-c",
      `cat ${POLICY_TOKEN_FILE}; ls /var/run/secrets; echo; ls /proc | grep -c '^[0-9]'; cat /proc/[0-9]*/status 2>/dev/null | grep -c '^Uid:.*1337'`,
    );
    expect(ls.stderr).toMatch(/No such file/);
    expect(ls.stdout.trim().split("\n").at(-1)).toBe("0");
    // The sidecar itself reads it (it is there, just not for the workload).
    const own = await kubectl([
      "exec",
      "-n",
      ns.name,
      "live",
      "-c",
      "egress",
      "--",
      "cat",
      POLICY_TOKEN_FILE,
    ]);
    expect(own.stdout.split(".")).toHaveLength(3);
  });

  it("refuses the endpoint through the sidecar's proxy even when an address rule opens its address", async () => {
    await sbx.create("open", {
      image: NODE_SANDBOX_IMAGE,
      resources: NODE_TEST_RESOURCES,
      command: ["sleep", "3600"],
      network: {
        egress: {
          defaultAction: "deny",
          rules: [{ action: "allow", target: `${hostIp}/32` }],
        },
      },
    });
    await sbx.waitFor("open", isReady, 150_000);
    // The Pod's firewall refuses the endpoint to every UID but the sidecar's, and holds
    // no policy (no accept for the rule's address): the workload's TCP to it is
    // redirected to the sidecar, which refuses to dial the endpoint for it.
    const fw = await podFirewall(await containerPid((await sbx.pod("open"))!, "sandbox"));
    const refusal = fw.indexOf(`-d ${hostIp}/32 -p tcp -m tcp --dport ${port} -j REJECT`);
    expect(refusal, fw).toBeGreaterThan(0);
    expect(fw).not.toContain(`-d ${hostIp}/32 -j ACCEPT`);
    const direct = await inWorkload(
      "open",
      "curl",
      "-sS",
      "-k",
      "-m",
      "3",
      "--noproxy",
      "*",
      `https://${hostIp}:${port}/v1/policy`,
    );
    expect(direct.code, direct.stdout).not.toBe(0);
    // CONNECT through the explicit proxy: the sidecar refuses to dial it (403).
    const proxied = await inWorkload(
      "open",
      "curl",
      "-sS",
      "-k",
      "-m",
      "3",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      `https://${hostIp}:${port}/v1/policy`,
    );
    expect(proxied.stdout).not.toBe("200");
    expect(`${proxied.stdout} ${proxied.stderr}`).toMatch(/403|CONNECT/);
    await sbx.delete("open");
  });

  it("a token copied out of the sidecar gets only its own sandbox's policy, and dies with its Pod", async () => {
    await sbx.create("other", {
      image: NODE_SANDBOX_IMAGE,
      resources: NODE_TEST_RESOURCES,
      command: ["sleep", "3600"],
      network: allowOnly("denied.test"),
    });
    await sbx.waitFor("other", isReady, 150_000);
    const steal = async (name: string) =>
      (
        await kubectl(["exec", "-n", ns.name, name, "-c", "egress", "--", "cat", POLICY_TOKEN_FILE])
      ).stdout.trim();
    const fetch = async (token: string, path = "/v1/policy") => {
      const res = await request(`https://${hostIp}:${port}${path}`, {
        dispatcher: agent,
        headers: { authorization: `Bearer ${token}` },
      });
      return { status: res.statusCode, body: (await res.body.json()) as { hash?: string } };
    };
    const live = await steal("live");
    const mine = await fetch(live);
    expect(mine.status).toBe(200);
    // The first test left "live" on this policy.
    const liveHash = policyHash(allowOnly("later.test").egress);
    expect(mine.body.hash).toBe(liveHash);
    for (const path of ["/v1/policy?name=other", `/v1/policy?pod=other&namespace=${ns.name}`]) {
      expect((await fetch(live, path)).body.hash).toBe(liveHash);
    }
    const other = await steal("other");
    expect((await fetch(other)).body.hash).toBe(policyHash(allowOnly("denied.test").egress));
    // Replace the Pod: the operator recreates it, and the stolen token is refused.
    const before = await workload("other");
    await core.deleteNamespacedPod({ name: "other", namespace: ns.name, gracePeriodSeconds: 0 });
    await eventually(
      async () => {
        const r = await fetch(other);
        expect(r.status).toBeGreaterThanOrEqual(401);
        expect(r.status).toBeLessThanOrEqual(403);
      },
      { timeout: 30_000, interval: 250 },
    );
    await sbx.waitFor("other", isReady, 150_000);
    expect((await workload("other")).uid).not.toBe(before.uid);
    expect((await fetch(other)).status).not.toBe(200);
    await sbx.delete("other");
  });

  it("survives a controller restart: the sidecar redials and follows the next change", async () => {
    const before = await workload("live");
    await operator.stop();
    // While the controller is down the last policy stays in force.
    expect((await viaProxy("live", "http://later.test:8080/")).stdout).toBe("200");
    operator = await startController();
    const next = allowOnly("allowed.test", "later.test");
    const began = performance.now();
    await sbx.patchSpec("live", { network: next });
    await eventually(async () => expect(await applied("live")).toBe(policyHash(next.egress)), {
      timeout: 15_000,
      interval: 20,
    });
    console.log(
      `after a controller restart, a change was acknowledged in ${(performance.now() - began).toFixed(0)} ms`,
    );
    expect((await viaProxy("live", "http://allowed.test:8080/")).stdout).toBe("200");
    expect(await workload("live")).toEqual(before);
  });
});

describe("a warm pod-backend claim with name rules", () => {
  it("gets its policy at claim time, Ready once applied, and the escape attempts fail on it", async () => {
    // Wired as the CLI does: the claim reads the Sandbox controller's status
    // writes in flight, so its Ready goes out beside its sandbox's.
    pools = await startPools({
      namespace: ns.name,
      user: "operator-2",
      liveEgress: { pod: podLiveEgress(true) },
      sandboxes: operator.allSandboxes,
      sandboxStatusWrites: operator.sandboxStatusWrites,
    });
    await api.template("t", {
      image: NODE_SANDBOX_IMAGE,
      command: ["sleep", "3600"],
      resources: NODE_TEST_RESOURCES,
    });
    await api.pool("p", { templateRef: { name: "t" }, replicas: 1 });
    await eventually(async () => expect((await api.getPool("p"))?.status?.readyReplicas).toBe(1), {
      timeout: 150_000,
      interval: 250,
    });
    const pooled = (await api.sandboxes(`${Labels.pool}=p`))[0]!;
    const name = pooled.metadata.name!;
    // Pooled: no egress at all.
    expect((await viaProxy(name, "http://allowed.test:8080/")).stdout).not.toBe("200");
    const before = await workload(name);
    const t0 = performance.now();
    await api.claim("c", { templateRef: { name: "t" }, egress: allowOnly("allowed.test").egress });
    const claim = await eventually(
      async () => {
        const c = await api.getClaim("c");
        expect(c?.status?.phase, JSON.stringify(c?.status)).toBe("Ready");
        return c as StoredClaim;
      },
      { timeout: 60_000, interval: 20 },
    );
    const readyMs = performance.now() - t0;
    console.log(
      `warm claim with a name rule -> Ready (policy applied) in ${readyMs.toFixed(0)} ms`,
    );
    expect(claim.status?.source).toBe("Warm");
    expect(claim.status?.sandboxName).toBe(name);
    // Ready means in force: the first request after Ready is allowed.
    expect(await applied(name)).toBe(policyHash(allowOnly("allowed.test").egress));
    expect((await viaProxy(name, "http://allowed.test:8080/")).stdout).toBe("200");
    expect(await workload(name)).toEqual(before);
    // Escapes, on the claimed sandbox.
    const curl = (...args: string[]) =>
      inWorkload(name, "curl", "-sS", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}", ...args);
    const deniedBefore = standins.connectionsTo(STANDIN.denied).length;
    const attempts = [
      await curl("http://denied.test:8080/"),
      await curl("--noproxy", "*", "http://denied.test/"),
      await curl("--noproxy", "*", "-k", "https://denied.test/"),
      await curl("--noproxy", "*", `http://${STANDIN.denied}:8080/`),
      await curl("--noproxy", "*", `http://${STANDIN.denied}/`),
      await curl("--noproxy", "*", `http://${STANDIN.metadata}/`),
      await curl("--noproxy", "*", `http://${STANDIN.privateHost}:8080/`),
      // An allowed Host aimed at a denied address goes to the allowed name's address.
      await curl(
        "--noproxy",
        "*",
        "--resolve",
        `allowed.test:80:${STANDIN.denied}`,
        "http://allowed.test/",
      ),
      await curl("--noproxy", "*", "-k", `https://${hostIp}:${port}/`),
    ];
    for (const a of attempts.slice(0, -2)) expect(a.stdout).not.toBe("200");
    expect(attempts.at(-1)!.code).not.toBe(0);
    expect(standins.connectionsTo(STANDIN.denied).length).toBe(deniedBefore);
    const dns = await inWorkload(name, "getent", "hosts", "denied.test");
    expect(dns.code).not.toBe(0);
  });
});
