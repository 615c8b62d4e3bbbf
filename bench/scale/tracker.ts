// What the benchmark sees: watches on Sandboxes, Pods and NetworkPolicies in
// the benchmark's namespaces (the operator's own Informer class), keeping
// counts and the moment each object was first seen created / Running / Ready.
// Waiting is event-driven: a condition is re-checked on each watch event,
// never in a polling loop.
import type * as k8s from "@kubernetes/client-node";
import { GROUP, SANDBOX_PLURAL, VERSION } from "../../src/api/group.js";
import { Informer, type KubeObject, keyOf } from "../../src/controller/informer.js";
import type { Logger } from "../../src/observability/logger.js";

type Sandboxish = KubeObject & {
  status?: { phase?: string; conditions?: { type: string; status: string }[] };
};

/** Objects of one kind: which exist, which are "up" (Running / Ready), and when each got there. */
class Population {
  private readonly present = new Set<string>();
  private readonly up = new Set<string>();
  /** Per namespace, kept as events arrive: a wait re-checks them on every event. */
  private readonly presentIn = new Map<string, number>();
  private readonly upIn = new Map<string, number>();
  readonly createdAt = new Map<string, number>();
  readonly upAt = new Map<string, number>();

  count(namespace: string): number {
    return this.presentIn.get(namespace) ?? 0;
  }

  countUp(namespace: string): number {
    return this.upIn.get(namespace) ?? 0;
  }

  observe(key: string, isUp: boolean, now: number): void {
    if (!this.present.has(key)) {
      this.present.add(key);
      bump(this.presentIn, key, 1);
      if (!this.createdAt.has(key)) this.createdAt.set(key, now);
    }
    if (isUp && !this.up.has(key)) {
      this.up.add(key);
      bump(this.upIn, key, 1);
      if (!this.upAt.has(key)) this.upAt.set(key, now);
    } else if (!isUp && this.up.has(key)) {
      this.up.delete(key);
      bump(this.upIn, key, -1);
    }
  }

  forget(key: string): void {
    if (this.up.delete(key)) bump(this.upIn, key, -1);
    if (this.present.delete(key)) bump(this.presentIn, key, -1);
    this.createdAt.delete(key);
    this.upAt.delete(key);
  }
}

function bump(counts: Map<string, number>, key: string, by: number): void {
  const ns = key.slice(0, key.indexOf("/"));
  counts.set(ns, (counts.get(ns) ?? 0) + by);
}

export class Tracker {
  readonly sandboxes = new Population();
  /** "up" = Running. */
  readonly pods = new Population();
  readonly networkPolicies = new Population();
  /** Sandboxes whose Ready condition is True. */
  readonly ready = new Population();
  private readonly informers: Informer<KubeObject>[];
  private waiters: (() => void)[] = [];

  constructor(kubeConfig: k8s.KubeConfig, namespaces: string[], log: Logger) {
    const informer = (apiPath: string, resource: string) =>
      new Informer<KubeObject>({ kubeConfig, apiPath, resource, namespaces, log });
    const sandboxes = informer(`/apis/${GROUP}/${VERSION}`, SANDBOX_PLURAL);
    const pods = informer("/api/v1", "pods");
    const nps = informer("/apis/networking.k8s.io/v1", "networkpolicies");
    this.informers = [sandboxes, pods, nps];

    this.follow(
      sandboxes,
      (o, key, now) => {
        const s = o as Sandboxish;
        this.sandboxes.observe(key, s.status?.phase === "Running", now);
        const ready = s.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True");
        this.ready.observe(key, !!ready, now);
      },
      [this.sandboxes, this.ready],
    );
    this.follow(
      pods,
      (o, key, now) => {
        const p = o as k8s.V1Pod;
        this.pods.observe(
          key,
          p.status?.phase === "Running" && !p.metadata?.deletionTimestamp,
          now,
        );
      },
      [this.pods],
    );
    this.follow(nps, (_o, key, now) => this.networkPolicies.observe(key, true, now), [
      this.networkPolicies,
    ]);
  }

  private follow(
    informer: Informer<KubeObject>,
    seen: (obj: KubeObject, key: string, now: number) => void,
    populations: Population[],
  ): void {
    const upsert = (obj: KubeObject) => {
      seen(obj, keyOf(obj), performance.now());
      this.wake();
    };
    informer.on({
      add: upsert,
      update: upsert,
      delete: (obj) => {
        for (const p of populations) p.forget(keyOf(obj));
        this.wake();
      },
    });
  }

  async start(): Promise<void> {
    for (const i of this.informers) i.start();
    await Promise.all(this.informers.map((i) => i.synced));
  }

  stop(): Promise<void> {
    return Promise.all(this.informers.map((i) => i.stop())).then(() => undefined);
  }

  /** Resolves once `done()` holds (checked on every watch event); rejects after `timeoutMs`. */
  until(done: () => boolean, what: () => string, timeoutMs: number): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what()}`));
      }, timeoutMs);
      const check = () => {
        if (!done()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve();
      };
      this.waiters.push(check);
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}
