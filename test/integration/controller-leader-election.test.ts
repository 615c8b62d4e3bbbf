// Leader election on a real Lease: one leader at a time, failover within the
// lease duration, immediate hand-over on release, stepping down when another
// holder shows up, when renewals hang (network partition through a proxy), and
// on the spot after a pause past the renew deadline, before any timer runs.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { LeaderElector } from "../../src/controller/leader-election.js";
import { rawRequest } from "../../src/controller/raw-request.js";
import { silentLogger } from "../../src/observability/logger.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";
import { blackholeProxy } from "../support/tcp-proxy.js";

const kc = kubeConfig();
const LEASE_MS = 2000;
const RENEW_DEADLINE_MS = 1500;
const RETRY_MS = 200;
let ns: Awaited<ReturnType<typeof testNamespace>>;
const electors: LeaderElector[] = [];

beforeAll(async () => {
  ns = await testNamespace(kc, "ctl-leader");
});
afterEach(async () => {
  await Promise.all(electors.splice(0).map((e) => e.stop({ release: false })));
});
afterAll(async () => {
  await ns?.delete();
});

/** Who leads when, across all candidates of a test: a second concurrent leader fails the test. */
function timeline() {
  const leaders = new Set<string>();
  const overlaps: string[] = [];
  const log: string[] = [];
  return {
    leaders,
    overlaps,
    log,
    candidate(lease: string, identity: string, kubeConfig = kc) {
      const e = new LeaderElector({
        kubeConfig,
        namespace: ns.name,
        name: lease,
        identity,
        leaseDurationMs: LEASE_MS,
        renewDeadlineMs: RENEW_DEADLINE_MS,
        retryPeriodMs: RETRY_MS,
        log: silentLogger(),
        onStartedLeading: () => {
          if (leaders.size > 0) overlaps.push(`${identity} while ${[...leaders]}`);
          leaders.add(identity);
          log.push(`+${identity}`);
        },
        onStoppedLeading: () => {
          leaders.delete(identity);
          log.push(`-${identity}`);
        },
      });
      electors.push(e);
      e.start();
      return e;
    },
  };
}

const holderOf = async (lease: string) =>
  (
    await rawRequest<{ spec: { holderIdentity?: string } }>(
      kc,
      "GET",
      `/apis/coordination.k8s.io/v1/namespaces/${ns.name}/leases/${lease}`,
    )
  ).spec.holderIdentity;

describe("LeaderElector", () => {
  it("elects one leader; another takes over within the lease duration once it dies", async () => {
    const t = timeline();
    const a = t.candidate("failover", "a");
    await eventually(() => expect(a.isLeader()).toBe(true));
    const b = t.candidate("failover", "b");
    // b keeps trying for a lease duration and must not win while a renews.
    await new Promise((r) => setTimeout(r, LEASE_MS));
    expect(b.isLeader()).toBe(false);
    expect(await holderOf("failover")).toBe("a");

    const diedAt = performance.now();
    await a.stop({ release: false }); // a crash: the lease is left to expire
    await eventually(() => expect(b.isLeader()).toBe(true), { interval: 20 });
    const tookMs = performance.now() - diedAt;
    expect(tookMs).toBeGreaterThan(LEASE_MS / 2); // it waited the lease out...
    expect(tookMs).toBeLessThan(LEASE_MS + 5 * RETRY_MS); // ...and not much longer
    expect(t.overlaps).toEqual([]);
    expect(t.log).toEqual(["+a", "-a", "+b"]);
  });

  it("hands over at once when the leader releases the lease", async () => {
    const t = timeline();
    const a = t.candidate("release", "a");
    await eventually(() => expect(a.isLeader()).toBe(true));
    const b = t.candidate("release", "b");
    const releasedAt = performance.now();
    await a.stop(); // releases
    expect(await holderOf("release")).not.toBe("a");
    await eventually(() => expect(b.isLeader()).toBe(true), { interval: 20 });
    expect(performance.now() - releasedAt).toBeLessThan(LEASE_MS / 2);
    expect(t.overlaps).toEqual([]);
  });

  it("stops leading as soon as it sees another holder", async () => {
    const t = timeline();
    const a = t.candidate("stolen", "a");
    await eventually(() => expect(a.isLeader()).toBe(true));
    const path = `/apis/coordination.k8s.io/v1/namespaces/${ns.name}/leases/stolen`;
    const lease = await rawRequest<{ spec: object }>(kc, "GET", path);
    await rawRequest(kc, "PUT", path, {
      body: { ...lease, spec: { ...lease.spec, holderIdentity: "intruder" } },
    });
    await eventually(() => expect(a.isLeader()).toBe(false), { timeout: RETRY_MS * 5 });
  });

  it("knows on the spot after a pause past its renew deadline, before its timers run", async () => {
    const t = timeline();
    const a = t.candidate("paused", "a");
    await eventually(() => expect(a.isLeader()).toBe(true));
    expect(a.holdsLease()).toBe(true);
    // A long GC (or SIGSTOP): the event loop is blocked past the renew deadline.
    const until = performance.now() + RENEW_DEADLINE_MS + 100;
    while (performance.now() < until) {}
    expect(a.isLeader()).toBe(true); // no timer has run to say otherwise...
    expect(a.holdsLease()).toBe(false); // ...but the clock does, and it steps down at once
    expect(a.isLeader()).toBe(false);
    expect(t.log).toEqual(["+a", "-a"]);
    // Nobody else wanted the lease: it renews and leads again, in a new term.
    await eventually(() => expect(a.isLeader()).toBe(true));
    expect(t.log).toEqual(["+a", "-a", "+a"]);
  });

  it("steps down within the renew deadline when renewals hang, before anyone else can lead", async () => {
    const proxy = await blackholeProxy(kc);
    try {
      const t = timeline();
      const a = t.candidate("partition", "a", proxy.kubeConfig);
      await eventually(() => expect(a.isLeader()).toBe(true));
      const b = t.candidate("partition", "b");
      const cutAt = performance.now();
      proxy.blackhole(); // requests now hang: no error, no answer
      await eventually(() => expect(a.isLeader()).toBe(false), { interval: 20 });
      expect(performance.now() - cutAt).toBeLessThan(RENEW_DEADLINE_MS + RETRY_MS);
      await eventually(() => expect(b.isLeader()).toBe(true));
      expect(t.overlaps).toEqual([]);
      expect(t.log).toEqual(["+a", "-a", "+b"]);
    } finally {
      await proxy.close();
    }
  });
});
