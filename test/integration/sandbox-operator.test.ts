// The operator as a whole: leader election between replicas, restarts that
// must not lose a sandbox's expiry, the API cost of an idle sandbox, and the
// CLI entry point as a real process.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { describeWrites, writesBy } from "../support/audit.js";
import { kubeConfig, testNamespace, userKubeconfigPath } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";
import { type RunningOperator, startOperator } from "../support/operator.js";
import { REPO_ROOT } from "../support/paths.js";
import { isReady, SandboxClient } from "../support/sandboxes.js";

const kc = kubeConfig();
let ns: Awaited<ReturnType<typeof testNamespace>>;
let sbx: SandboxClient;
const running: RunningOperator[] = [];

async function operator(
  user: string,
  leaseName = "lease-a",
  opts: { leaseDurationMs?: number } = {},
) {
  const op = await startOperator({
    namespace: ns.name,
    user,
    leaderElection: { name: leaseName, leaseDurationMs: opts.leaseDurationMs ?? 3000 },
  });
  running.push(op);
  return op;
}

beforeAll(async () => {
  ns = await testNamespace(kc, "operator");
  sbx = new SandboxClient(kc, ns.name);
});
// Every test starts with no controller in its namespace.
afterEach(async () => {
  await Promise.all(running.splice(0).map((op) => op.stop()));
});
afterAll(async () => {
  await ns?.delete();
});

describe("leader election", () => {
  it("lets only the leader write, and fails over within the lease duration", async () => {
    const a = await operator("operator-1", "lease-failover");
    await eventually(() => expect(a.isLeader()).toBe(true));
    const b = await operator("operator-2", "lease-failover");

    await sbx.create("elected", { image: "busybox" });
    await sbx.waitFor("elected", isReady);
    expect(b.isLeader()).toBe(false);
    expect(await writesBy("operator-2", ns.name, "sandboxes")).toBe(0);
    expect(await writesBy("operator-1", ns.name, "sandboxes")).toBeGreaterThan(0);

    // The leader dies without releasing its lease: the other waits out the lease.
    const crashedAt = Date.now();
    await a.stop({ release: false });
    await eventually(() => expect(b.isLeader()).toBe(true), { timeout: 10_000 });
    expect(Date.now() - crashedAt).toBeLessThan(3000 + 3000);

    await sbx.create("after-failover", { image: "busybox" });
    await sbx.waitFor("after-failover", isReady);
    expect(await writesBy("operator-2", ns.name, "sandboxes")).toBeGreaterThan(0);
  });

  it("hands over at once when the leader releases its lease on shutdown", async () => {
    const a = await operator("operator-1", "lease-release", { leaseDurationMs: 15_000 });
    await eventually(() => expect(a.isLeader()).toBe(true));
    const b = await operator("operator-2", "lease-release", { leaseDurationMs: 15_000 });
    const stoppedAt = Date.now();
    await a.stop();
    await eventually(() => expect(b.isLeader()).toBe(true), { timeout: 10_000 });
    expect(Date.now() - stoppedAt).toBeLessThan(15_000);
  });
});

describe("restarts", () => {
  it("expires on time when the controller restarts just before expiry", async () => {
    const first = await operator("operator-3", "lease-restart");
    const created = await sbx.create("restart", { image: "busybox", lifetime: { ttlSeconds: 5 } });
    await sbx.waitFor("restart", isReady);
    await first.stop();
    const expiresAt = Date.parse(created.metadata.creationTimestamp as unknown as string) + 5000;
    // Down until a moment before expiry: nothing in memory survives.
    await new Promise((r) => setTimeout(r, Math.max(0, expiresAt - Date.now() - 500)));
    await operator("operator-3", "lease-restart");
    await sbx.waitGone("restart", 15_000);
    expect(Date.now() - expiresAt).toBeLessThan(3000);
  });
});

describe("API cost", () => {
  it("makes zero API writes for an idle Running sandbox over 60 s", {
    timeout: 120_000,
  }, async () => {
    await operator("operator-0", "lease-idle");
    await sbx.create("idle", { image: "busybox", lifetime: { ttlSeconds: 3600 } });
    await sbx.waitFor("idle", isReady);
    // Let any trailing events and status settle.
    await new Promise((r) => setTimeout(r, 2000));
    const before = await writesBy("operator-0");
    await new Promise((r) => setTimeout(r, 60_000));
    expect(await writesBy("operator-0"), await describeWrites("operator-0")).toBe(before);
  });
});

describe("sandbox-operator controller (the CLI)", () => {
  let child: ChildProcess | undefined;
  afterAll(() => {
    child?.kill("SIGKILL");
  });

  it("rejects a bad flag with a clear message and a non-zero exit", async () => {
    const proc = spawn(process.execPath, [
      join(REPO_ROOT, "dist/cli/main.js"),
      "controller",
      "--concurrency=zero",
    ]);
    let stderr = "";
    proc.stderr.on("data", (d) => {
      stderr += d;
    });
    const [code] = await once(proc, "exit");
    expect(code).toBe(2);
    expect(stderr).toContain("--concurrency");
  });

  it("serves metrics and readiness, reconciles, and releases its lease on SIGTERM", async () => {
    const port = 18000 + Math.floor(Math.random() * 1000);
    child = spawn(process.execPath, [
      join(REPO_ROOT, "dist/cli/main.js"),
      "controller",
      `--kubeconfig=${userKubeconfigPath("operator-0")}`,
      `--namespaces=${ns.name}`,
      "--leader-election-namespace=default",
      `--leader-election-id=cli-${ns.name}`,
      `--metrics-bind-address=127.0.0.1:${port}`,
      `--health-probe-bind-address=127.0.0.1:${port + 1}`,
    ]);
    let logs = "";
    child.stdout?.on("data", (d) => {
      logs += d;
    });
    child.stderr?.on("data", (d) => {
      logs += d;
    });
    await eventually(async () => {
      const res = await fetch(`http://127.0.0.1:${port + 1}/readyz`);
      expect(res.status, logs).toBe(200);
    });
    await sbx.create("cli", { image: "busybox" });
    await sbx.waitFor("cli", isReady);
    await eventually(async () => {
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(
        /sandbox_operator_reconcile_total\{[^}]*result="(success|requeue)"[^}]*\} [1-9]/,
      );
      expect(metrics).toMatch(/sandbox_operator_sandbox_ready_seconds_count\{[^}]*\} [1-9]/);
      expect(metrics).toMatch(/sandbox_operator_sandboxes\{[^}]*phase="Running"[^}]*\} [1-9]/);
    });
    // Every log line is JSON, and reconcile lines name the sandbox.
    const lines = logs
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.some((l) => l.sandbox === `${ns.name}/cli`)).toBe(true);

    child.kill("SIGTERM");
    const [code] = await once(child, "exit");
    expect(code).toBe(0);
    const leases = kc.makeApiClient(k8s.CoordinationV1Api);
    const lease = await leases.readNamespacedLease({
      name: `cli-${ns.name}`,
      namespace: "default",
    });
    expect(lease.spec?.holderIdentity ?? "").toBe("");
  });
});
