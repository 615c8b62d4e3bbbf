// The composed controller against the real apiserver, over ConfigMaps (primary)
// and Secrets (secondary, mapped by an "owner" label): reconciles on change,
// error handling by kind, requeue-after, metrics, draining stop, workers
// running only on the leader, and no write from a leader paused past its lease.
import * as k8s from "@kubernetes/client-node";
import { Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Controller, type ControllerOptions } from "../../src/controller/controller.js";
import { ConflictError, PermanentError } from "../../src/controller/errors.js";
import { Informer, type KubeObject } from "../../src/controller/informer.js";
import { gateWrites, NotLeaderError, notLeaderCause } from "../../src/controller/write-gate.js";
import { silentLogger } from "../../src/observability/logger.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";

const kc = kubeConfig();
const core = kc.makeApiClient(k8s.CoreV1Api);
const log = silentLogger();
let ns: Awaited<ReturnType<typeof testNamespace>>;
const running: Controller[] = [];

beforeAll(async () => {
  ns = await testNamespace(kc, "ctl-controller");
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((c) => c.stop()));
});
afterAll(async () => {
  await ns?.delete();
});

type ConfigMap = KubeObject & { data?: Record<string, string> };

/** A controller over ConfigMaps labelled suite=<suite>, with Secrets mapped to them by label. */
function controller(
  suite: string,
  reconcile: ControllerOptions["reconcile"],
  extra: Partial<ControllerOptions> = {},
) {
  const informer = (resource: string) =>
    new Informer<KubeObject>({
      kubeConfig: kc,
      apiPath: "/api/v1",
      resource,
      namespaces: [ns.name],
      labelSelector: `suite=${suite}`,
      log,
    });
  const registry = new Registry();
  const primary = informer("configmaps");
  const c = new Controller({
    name: suite,
    primary,
    secondaries: [
      {
        informer: informer("secrets"),
        primaryKey: (o) =>
          o.metadata?.labels?.owner && `${o.metadata.namespace}/${o.metadata.labels.owner}`,
      },
    ],
    reconcile,
    concurrency: 2,
    backoff: { baseMs: 20, maxMs: 200 },
    registry,
    metricPrefix: "test",
    log,
    ...extra,
  });
  running.push(c);
  return { c, registry, primary: primary as Informer<ConfigMap> };
}

const configMap = (suite: string, name: string, data: Record<string, string> = {}) =>
  core.createNamespacedConfigMap({
    namespace: ns.name,
    body: { metadata: { name, labels: { suite } }, data },
  });

/** Reconcile counts per key. */
function counter() {
  const calls = new Map<string, number>();
  return {
    calls,
    of: (name: string) => calls.get(`${ns.name}/${name}`) ?? 0,
    hit: (key: string) => calls.set(key, (calls.get(key) ?? 0) + 1).get(key)!,
  };
}

describe("Controller", () => {
  it("reconciles primaries, and secondaries through their primary; reports metrics", async () => {
    const n = counter();
    const { c, registry } = controller("basic", async (key) => {
      n.hit(key);
    });
    await configMap("basic", "pre");
    c.start();
    await eventually(() => expect(c.ready()).toBe(true));
    expect(c.isLeader()).toBe(true);
    await eventually(() => expect(n.of("pre")).toBe(1));

    await configMap("basic", "later");
    await eventually(() => expect(n.of("later")).toBe(1));
    await core.createNamespacedSecret({
      namespace: ns.name,
      body: { metadata: { name: "owned", labels: { suite: "basic", owner: "later" } } },
    });
    await eventually(() => expect(n.of("later")).toBe(2));
    expect(n.of("pre")).toBe(1);

    const metrics = await registry.metrics();
    expect(metrics).toMatch(/test_reconcile_total\{controller="basic",result="success"\} 3/);
    expect(metrics).toContain('test_reconcile_duration_seconds_count{controller="basic"} 3');
    expect(metrics).toContain('test_workqueue_wait_seconds_count{controller="basic"} 3');
    expect(metrics).toContain('test_workqueue_depth{controller="basic"} 0');
  });

  it("retries transient errors with backoff, conflicts at once, never permanent errors; honors requeueAfter", async () => {
    const n = counter();
    const { c, registry } = controller("errors", async (key) => {
      const count = n.hit(key);
      if (key.endsWith("/permanent")) throw new PermanentError("InvalidSpec", "the spec is wrong");
      if (key.endsWith("/transient") && count <= 3) throw new Error("apiserver hiccup");
      if (key.endsWith("/conflict") && count === 1) throw new ConflictError("stale cache");
      if (key.endsWith("/requeue") && count < 3) return { requeueAfter: 100 };
    });
    c.start();
    await Promise.all(
      ["permanent", "transient", "conflict", "requeue"].map((name) => configMap("errors", name)),
    );
    await eventually(() => {
      expect(n.of("transient")).toBe(4);
      expect(n.of("conflict")).toBe(2);
      expect(n.of("requeue")).toBe(3);
    });
    // A retried permanent error would have run again by now (backoff starts at 20 ms).
    expect(n.of("permanent")).toBe(1);
    const metrics = await registry.metrics();
    expect(metrics).toContain(
      'test_reconcile_errors_total{controller="errors",kind="permanent"} 1',
    );
    expect(metrics).toContain(
      'test_reconcile_errors_total{controller="errors",kind="transient"} 3',
    );
    expect(metrics).toContain('test_reconcile_errors_total{controller="errors",kind="conflict"} 1');
    expect(metrics).toContain('test_reconcile_total{controller="errors",result="requeue"} 2');
    expect(metrics).toContain('test_workqueue_retries_total{controller="errors"} 4');
  });

  it("waits for in-flight reconciles on stop", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let finished = false;
    let signal: AbortSignal | undefined;
    const { c } = controller("drain", async (_key, ctx) => {
      signal = ctx.signal;
      await gate;
      finished = true;
    });
    c.start();
    await configMap("drain", "slow");
    await eventually(() => expect(signal).toBeDefined());
    const stopped = c.stop();
    expect(signal?.aborted).toBe(true); // told to wind down...
    setTimeout(release, 100);
    await stopped;
    expect(finished).toBe(true); // ...and waited for
  });

  it("reconciles only on the leader, and everything on a new leader", async () => {
    const lease = {
      kubeConfig: kc,
      namespace: ns.name,
      name: "controller",
      leaseDurationMs: 2000,
      renewDeadlineMs: 1500,
      retryPeriodMs: 200,
    };
    const a = counter();
    const b = counter();
    const ca = controller("leader", async (key) => void a.hit(key), {
      leaderElection: { ...lease, identity: "a" },
    });
    ca.c.start();
    await eventually(() => expect(ca.c.isLeader()).toBe(true));
    const cb = controller("leader", async (key) => void b.hit(key), {
      leaderElection: { ...lease, identity: "b" },
    });
    cb.c.start();
    await configMap("leader", "one");
    await eventually(() => expect(a.of("one")).toBe(1));
    await eventually(() => expect(cb.primary.get(`${ns.name}/one`)).toBeDefined()); // the standby's cache is warm...
    expect(b.calls.size).toBe(0); // ...but it does not reconcile

    await ca.c.stop(); // releases the lease
    await eventually(() => expect(cb.c.isLeader()).toBe(true));
    await eventually(() => expect(b.of("one")).toBe(1)); // a new leader reconciles every key
    await configMap("leader", "two");
    await eventually(() => expect(b.of("two")).toBe(1));
    expect(a.of("two")).toBe(0);
  });

  it("a leader paused past its renew deadline aborts its reconcile and writes nothing, timers or not", async () => {
    let outcome: { signal: AbortSignal; err: unknown; leaderAfter: boolean } | undefined;
    let paused = false;
    const { c } = controller(
      "paused",
      async (_key, ctx) => {
        if (paused) return;
        paused = true;
        const core = gateWrites(kc, c.writeGate).makeApiClient(k8s.CoreV1Api);
        // A long GC: the event loop is blocked past the renew deadline, so the
        // elector's step-down timer can only fire after whatever runs next.
        const until = performance.now() + 1800;
        while (performance.now() < until) {}
        const err = await core
          .createNamespacedConfigMap({ namespace: ns.name, body: { metadata: { name: "late" } } })
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        outcome = { signal: ctx.signal, err, leaderAfter: c.isLeader() };
      },
      {
        leaderElection: {
          kubeConfig: kc,
          namespace: ns.name,
          name: "paused",
          identity: "paused",
          leaseDurationMs: 2000,
          renewDeadlineMs: 1500,
          retryPeriodMs: 200,
        },
      },
    );
    c.start();
    await configMap("paused", "work");
    await eventually(() => expect(outcome).toBeDefined(), { timeout: 10_000 });
    expect(notLeaderCause(outcome?.err)).toBeInstanceOf(NotLeaderError);
    expect(outcome?.signal.aborted).toBe(true);
    expect(outcome?.leaderAfter).toBe(false);
    const late = await core
      .readNamespacedConfigMap({ name: "late", namespace: ns.name })
      .catch((e: unknown) => e);
    expect((late as k8s.ApiException<unknown>).code).toBe(404);
    // Nobody else wanted the lease: it leads again, in a new term.
    await eventually(() => expect(c.isLeader()).toBe(true));
  });
});
