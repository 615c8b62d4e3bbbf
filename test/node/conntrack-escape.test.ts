// The conntrack escapes (test/egress/conntrack-escape.test.ts) run inside real
// sandbox Pods on the real node, by the workload itself (`kubectl exec` into
// the sandbox container, as its UID, with no capabilities): ride a flow
// conntrack attributes to the sidecar by binding the port of the sidecar's
// just-closed upstream DNS socket, by sending on a TCP tuple conntrack still
// tracks, or by pinging with the identifier of a sidecar echo. Every target is
// a stand-in in a namespace of this test's own, and the NetworkPolicy lets the
// sandbox reach it (a public test address), so a refusal is the Pod's firewall
// at work, and the stand-ins' logs show nothing arrived.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import type * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { EGRESS_UID } from "../../src/backends/pod/egress.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { OPERATOR_IMAGE } from "../support/docker.js";
import {
  asWorkloadIn,
  containerPid,
  kubectl,
  NODE_SANDBOX_IMAGE,
  NODE_TEST_RESOURCES,
} from "../support/node/pods.js";
import { STANDIN, type Standins, startStandins } from "../support/node/standins.js";
import { type RunningOperator, startOperator } from "../support/operator.js";
import { REPO_ROOT } from "../support/paths.js";
import { isReady, SandboxClient } from "../support/sandboxes.js";

const exec = promisify(execFile);
const kc = kubeConfig();
const ESCAPE_PATH = join(REPO_ROOT, "test/egress/support/escape.py");
const ESCAPE = readFileSync(ESCAPE_PATH, "utf8");
const ZONE = {
  "allowed.test": { A: [STANDIN.allowed] },
  "denied.test": { A: [STANDIN.denied] },
};

let ns: Awaited<ReturnType<typeof testNamespace>>;
let operator: RunningOperator;
let standins: Standins;

beforeAll(async () => {
  standins = await startStandins(inject("nodeNetns"), inject("nodePodCidr"), ZONE, [
    "allowed.test",
  ]);
  ns = await testNamespace(kc, "escape");
  operator = await startOperator({
    namespace: ns.name,
    user: "operator-2",
    egressImage: OPERATOR_IMAGE,
  });
});
afterAll(async () => {
  await operator?.stop();
  await ns?.delete();
  await standins?.destroy();
});

describe.each(["deny", "allow"] as const)("defaultAction %s, in a real Pod", (defaultAction) => {
  const name = `escape-${defaultAction}`;
  let pod: k8s.V1Pod;
  let workloadPid: number;

  beforeAll(async () => {
    const sbx = new SandboxClient(kc, ns.name);
    await sbx.create(name, {
      image: NODE_SANDBOX_IMAGE,
      resources: NODE_TEST_RESOURCES,
      command: ["sleep", "3600"],
      network: {
        egress: {
          defaultAction,
          // The denied stand-in is refused by an address rule too, so under
          // "allow" the kernel firewall (not only the sidecar) refuses it.
          rules: [
            { action: "allow", target: "allowed.test" },
            { action: "deny", target: STANDIN.denied },
          ],
        },
      },
    });
    await sbx.waitFor(
      name,
      (s) => {
        isReady(s);
        expect(s.status?.phase).toBe("Running");
      },
      180_000,
    );
    pod = (await sbx.pod(name))!;
    workloadPid = await containerPid(pod, "sandbox");
    // Containerd leaves unprivileged ICMP off; Docker turns it on, and a
    // cluster may too (a safe sysctl). Opened here, as root from the node, so
    // the ICMP attack has its means: the workload could not do this itself.
    await exec("nsenter", [
      ...["-t", String(workloadPid), "-n", "--"],
      ...["sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"],
    ]);
  }, 240_000);

  /** escape.py run by the workload in its own container; its JSON verdict. */
  async function attack(args: string[]): Promise<Record<string, unknown>> {
    const r = await kubectl(
      ["exec", "-n", ns.name, name, "-c", "sandbox", "--", "python3", "-c", ESCAPE, ...args],
      90_000,
    );
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout.trim().split("\n").pop()!);
  }
  /** A conntrack entry in the Pod's namespace, as the node (root) would hold one. */
  const track = (dst: string, dport: number, sport: number) =>
    exec("nsenter", [
      ...["-t", String(workloadPid), "-n", "--", "conntrack", "-I", "-p", "tcp"],
      ...["-s", pod.status!.podIP!, "-d", dst, "--sport", String(sport), "--dport", String(dport)],
      ...["-r", dst, "-q", pod.status!.podIP!, "--reply-port-src", String(dport)],
      ...["--reply-port-dst", String(sport), "--state", "ESTABLISHED", "--timeout", "120"],
      ...["-u", "SEEN_REPLY,ASSURED"],
    ]);
  const dnsAsked = (since: number) =>
    standins
      .dnsQueries()
      .slice(since)
      .map((q) => String(q.name));

  it("the workload runs as an unprivileged UID, not the sidecar's", async () => {
    const id = await kubectl(["exec", "-n", ns.name, name, "-c", "sandbox", "--", "id", "-u"]);
    expect(Number(id.stdout.trim())).not.toBe(EGRESS_UID);
    expect(Number(id.stdout.trim())).not.toBe(0);
  });

  it("UDP: binding the port of the sidecar's closed upstream DNS socket does not reach the upstream", async () => {
    const since = standins.dnsQueries().length;
    const r = await attack([
      "udp-dns",
      STANDIN.dns,
      String(EGRESS_UID),
      "allowed.test",
      "denied.test",
    ]);
    // The precondition held: the workload saw the sidecar's socket in the Pod's
    // namespace and bound its port once the sidecar let it go.
    expect(r.sawSidecarPort, JSON.stringify(r)).toBe(true);
    expect(r.answered, JSON.stringify(r)).toBe(false);
    expect(r.addresses ?? []).not.toContain(STANDIN.denied);
    const asked = dnsAsked(since);
    expect(asked).toContain("allowed.test"); // the sidecar's own query went out
    expect(asked).not.toContain("denied.test");
  });

  it("TCP: a tuple conntrack tracks as established does not carry the workload out", async () => {
    await track(STANDIN.denied, 8080, 40_123);
    const before = standins.connectionsTo(STANDIN.denied).length;
    const r = await attack(["tcp", STANDIN.denied, "8080", "40123", "denied.test"]);
    expect(r).toMatchObject({ connected: false });
    expect(standins.connectionsTo(STANDIN.denied).length).toBe(before);
  });

  it("TCP: a port-80 tuple conntrack tracks does not skip the transparent proxy", async () => {
    await track(STANDIN.denied, 80, 40_124);
    const before = standins.connectionsTo(STANDIN.denied).length;
    const r = await attack(["tcp", STANDIN.denied, "80", "40124", "denied.test"]);
    expect(r).toMatchObject({ connected: false });
    expect(standins.connectionsTo(STANDIN.denied).length).toBe(before);
  });

  it("ICMP: an echo with the identifier of the sidecar's echo gets no reply", async () => {
    // The sidecar's UID pings the stand-in: the path is open to it.
    const own = await asWorkloadIn(
      workloadPid,
      ["/usr/bin/python3", ESCAPE_PATH, "ping", STANDIN.denied, "4242", "sidecar"],
      EGRESS_UID,
    );
    expect(JSON.parse(own.stdout.trim()), own.stderr).toMatchObject({
      replied: true,
      sender: STANDIN.denied,
    });
    const r = await attack(["ping", STANDIN.denied, "4242", "exfil"]);
    expect(r).toMatchObject({ replied: false });
  });
});
