// A leader paused past its lease (SIGSTOP stands for a long GC, a frozen VM, a
// partition) in the middle of a burst of work, resumed after another replica
// took over, must not write anything more: not a status, not an Event, not a
// Pod. The apiserver's audit log is the witness (each replica authenticates as
// its own user), from the new leader's acquireTime on.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawRequest } from "../../src/controller/raw-request.js";
import { writesBy, writesReceivedSince } from "../support/audit.js";
import { kubeConfig, testNamespace, userKubeconfigPath } from "../support/cluster.js";
import { type ControllerProcess, startControllerProcess } from "../support/controller-process.js";
import { eventually } from "../support/eventually.js";
import { type RunningOperator, startOperator } from "../support/operator.js";
import { SandboxClient } from "../support/sandboxes.js";

const kc = kubeConfig();
const LEASE = "deposed";
const BURST = 30;
let ns: Awaited<ReturnType<typeof testNamespace>>;
let sbx: SandboxClient;
let old: ControllerProcess | undefined;
let successor: RunningOperator | undefined;

beforeAll(async () => {
  ns = await testNamespace(kc, "ctl-deposed");
  sbx = new SandboxClient(kc, ns.name);
});
afterAll(async () => {
  await old?.stop();
  await successor?.stop();
  await ns?.delete();
});

/** The Lease as stored: acquireTime stays a MicroTime string, comparable with the audit log's. */
const lease = () =>
  rawRequest<{ spec?: { holderIdentity?: string; acquireTime?: string } }>(
    kc,
    "GET",
    `/apis/coordination.k8s.io/v1/namespaces/${ns.name}/leases/${LEASE}`,
  ).then((l) => l.spec ?? {});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("a leader paused past its lease", () => {
  it("writes nothing once another replica has taken over, though it was paused mid-burst", {
    timeout: 150_000,
  }, async () => {
    // Slow writes (5/s) so that a burst leaves work queued, waiting for
    // rate-limit tokens and for answers, when the process is paused.
    old = await startControllerProcess({
      kubeconfig: userKubeconfigPath("operator-1"),
      namespace: ns.name,
      podName: "operator-1",
      flags: [`--leader-election-id=${LEASE}`, "--kube-api-qps=5", "--kube-api-burst=5"],
    });
    await eventually(async () => expect((await lease()).holderIdentity).toMatch(/^operator-1_/));

    await Promise.all(
      Array.from({ length: BURST }, (_, i) => sbx.create(`s${i}`, { image: "busybox" })),
    );
    await eventually(async () => expect(await writesBy("operator-1", ns.name)).toBeGreaterThan(5), {
      interval: 50,
    });
    old.pause();
    const writtenBeforePause = await writesBy("operator-1", ns.name);

    // The successor waits the lease out (15 s, the CLI's default) and takes over.
    successor = await startOperator({
      user: "operator-2",
      namespace: ns.name,
      leaderElection: { name: LEASE },
    });
    await eventually(() => expect(successor?.isLeader()).toBe(true), {
      timeout: 40_000,
      interval: 50,
    });
    const takeover = await lease();
    expect(takeover.holderIdentity).toMatch(/^operator-2-/);
    const acquiredAt = takeover.acquireTime!;

    // Resume: the old leader wakes with reconciles in flight and timers late.
    old.resume();
    await sleep(8000);
    expect(old.proc.child.exitCode, old.logs()).toBeNull(); // alive, a follower now
    expect(await writesReceivedSince("operator-1", acquiredAt, ns.name), old.logs()).toEqual([]);
    expect(readFileSync(old.proc.logPath, "utf8")).toMatch(/renew deadline passed.*stepping down/);

    // The pause did catch it mid-burst: it had written a little, the successor finished.
    expect(writtenBeforePause).toBeLessThan(BURST * 3);
    await eventually(
      async () => {
        for (let i = 0; i < BURST; i++)
          expect((await sbx.get(`s${i}`))?.status?.phase).toBeDefined();
      },
      { timeout: 30_000 },
    );
    const successorWrites = await writesBy("operator-2", ns.name);
    expect(successorWrites).toBeGreaterThan(0);
    console.info(
      `deposed leader: ${writtenBeforePause} writes before the pause, none after the takeover; the successor made ${successorWrites}`,
    );
  });
});
