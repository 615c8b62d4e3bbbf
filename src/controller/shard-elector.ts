// Sharded ownership: K shards, each a coordination.k8s.io/v1 Lease held by at
// most one replica, so several replicas reconcile at once, each its share of
// the keys (shard.ts maps keys to shards and decides what to take or give up).
//
// Per shard, exactly the guarantees of leader-election.ts: a Lease is taken
// only when free or not renewed for a whole lease duration by our own clock
// (since we saw its record change); renewals are compare-and-swaps on the
// resourceVersion; a holder that has not renewed within the renew deadline
// (shorter than the lease duration) stops, by a timer and by holds(), which
// compares the deadline with the clocks themselves (a paused process learns of
// the loss before any timer runs); a shard is given up by stopping its work
// first and clearing the holder second, so its next holder starts only after.
//
// One round per retry period: one LIST of the group's Leases (by label), a
// renewal of this replica's membership Lease (how replicas count each other, so
// each aims at ceil(K / replicas) shards), renewals of held shards, then the
// plan's takes and releases. A release runs beside the rounds, not in one: it
// waits for the shard's reconciles to drain (up to the renew deadline), and a
// round that waited for it renewed nothing meanwhile: with slow requests, every
// other shard held could pass its renew deadline and be stopped too. Membership Leases of replicas
// gone for long are deleted, so a Deployment's ever-new pod names do not pile up.
import type * as k8s from "@kubernetes/client-node";
import type { Logger } from "../observability/logger.js";
import { sleep } from "./backoff.js";
import { apiStatus, errorMessage } from "./errors.js";
import type { Lease, LeaseSpec } from "./lease.js";
import { leaseTimings } from "./lease-timings.js";
import { microTime, rawRequest } from "./raw-request.js";
import { planShards, type ShardView, shardOf } from "./shard.js";

export interface ShardElectorOptions {
  kubeConfig: k8s.KubeConfig;
  namespace: string;
  /** Prefix of the Leases: `<name>-shard-<i>` and `<name>-member-<identity>`. */
  name: string;
  identity: string;
  /** Number of shards, fixed per installation. */
  shards: number;
  /** Label that groups the Leases (its value is `name`), so one LIST finds them. */
  groupLabel: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onStarted(shard: number): void;
  onStopped(shard: number): void;
  /**
   * Resolves once the shard's in-flight work (aborted by onStopped) has ended;
   * a shard given up is released only after it (or the renew deadline), so its
   * next holder never overlaps a write that was already on the wire.
   */
  drain?(shard: number): Promise<void>;
  log: Logger;
}

interface Clocks {
  monotonic: number;
  wall: number;
}

/** A membership Lease expired this many lease durations ago is deleted. */
const STALE_MEMBER_DURATIONS = 10;

export class ShardElector {
  /** Per held shard: until when its last renewal lets us act, and the step-down timer. */
  private readonly held = new Map<number, { until: Clocks; timer: NodeJS.Timeout }>();
  /**
   * Shards given up whose release (drain, then clearing the holder) is under
   * way. Not awaited by the round: a drain may take up to the renew deadline,
   * and the renewals of every other shard held must not wait for it.
   */
  private readonly releasing = new Map<number, Promise<void>>();
  /** Each Lease's record as last seen, and when (our clock) it last changed. */
  private readonly observed = new Map<string, { record: string; at: number }>();
  private readonly stopping = new AbortController();
  private loop: Promise<void> | undefined;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly path: string;
  private readonly log: Logger;

  constructor(private readonly opts: ShardElectorOptions) {
    ({
      leaseDurationMs: this.leaseDurationMs,
      renewDeadlineMs: this.renewDeadlineMs,
      retryPeriodMs: this.retryPeriodMs,
    } = leaseTimings(opts, "sharding"));
    if (!(Number.isInteger(opts.shards) && opts.shards >= 1)) {
      throw new Error("shards must be a positive integer");
    }
    this.path = `/apis/coordination.k8s.io/v1/namespaces/${opts.namespace}/leases`;
    this.log = opts.log.child({ shards: opts.name, identity: opts.identity });
  }

  /** Whether we believe we hold `shard` (the last round's view; cheap, for routing events). */
  believesHeld(shard: number): boolean {
    return this.held.has(shard);
  }

  /** Shards held now. */
  heldShards(): number[] {
    return [...this.held.keys()].sort((a, b) => a - b);
  }

  /**
   * Whether we hold `shard` by the clocks, checked now rather than by a timer;
   * stops the shard (synchronously, so onStopped runs first) when its renew
   * deadline has passed.
   */
  holds(shard: number): boolean {
    const h = this.held.get(shard);
    if (!h) return false;
    if (performance.now() < h.until.monotonic && Date.now() < h.until.wall) return true;
    this.log.error({ shard }, "a shard's renew deadline passed (was this process paused?)");
    this.lose(shard);
    return false;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stop campaigning and every shard; by default release them so others need not wait. */
  async stop({ release = true } = {}): Promise<void> {
    this.stopping.abort();
    await this.loop;
    await Promise.all(this.releasing.values());
    const shards = this.heldShards();
    for (const s of shards) this.lose(s);
    if (!release) return;
    await Promise.all([
      ...shards.map(async (s) => {
        await this.drained(s);
        await this.release(this.shardLease(s));
      }),
      this.release(this.memberLease()),
    ]);
  }

  private shardLease(shard: number): string {
    return `${this.opts.name}-shard-${shard}`;
  }

  /** `<name>-member-<identity>`, the identity made a valid object name (it may hold "_"). */
  private memberLease(): string {
    const slug = this.opts.identity
      .toLowerCase()
      .replace(/[^a-z0-9.-]+/g, "-")
      .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, "")
      .slice(0, 200);
    const id =
      slug === this.opts.identity
        ? slug
        : `${slug}-${shardOf(this.opts.identity, 2 ** 31).toString(36)}`;
    return `${this.opts.name}-member-${id}`;
  }

  private async run(): Promise<void> {
    while (!this.stopping.signal.aborted) {
      for (const s of this.heldShards()) this.holds(s);
      try {
        await this.round();
      } catch (err) {
        if (!this.stopping.signal.aborted) {
          this.log.warn({ err: errorMessage(err) }, "shard round failed");
        }
      }
      await sleep(this.retryPeriodMs, this.stopping.signal);
    }
  }

  private async round(): Promise<void> {
    const leases = await this.request<{ items: Lease[] }>("GET", this.path, undefined, {
      labelSelector: `${this.opts.groupLabel}=${this.opts.name}`,
    });
    const now = performance.now();
    const byName = new Map<string, Lease>();
    for (const l of leases.items) {
      byName.set(l.metadata.name, l);
      const record = JSON.stringify(l.spec ?? {});
      const seen = this.observed.get(l.metadata.name);
      if (seen?.record !== record) this.observed.set(l.metadata.name, { record, at: now });
    }
    const expiredFor = (l: Lease): number => {
      const seenAt = this.observed.get(l.metadata.name)?.at ?? now;
      return now - seenAt - (l.spec?.leaseDurationSeconds ?? 0) * 1000;
    };

    // Membership: our own, and a count of the others still renewing.
    const memberPrefix = `${this.opts.name}-member-`;
    let members = 1;
    const stale: Lease[] = [];
    for (const l of byName.values()) {
      if (!l.metadata.name.startsWith(memberPrefix) || l.metadata.name === this.memberLease())
        continue;
      const age = expiredFor(l);
      if (age < 0 && l.spec?.holderIdentity) members++;
      else if (age > STALE_MEMBER_DURATIONS * this.leaseDurationMs) stale.push(l);
    }

    // Our view of every shard; a shard we hold that shows another holder is lost at once.
    const views: ShardView[] = [];
    for (let shard = 0; shard < this.opts.shards; shard++) {
      const l = byName.get(this.shardLease(shard));
      const holder = l?.spec?.holderIdentity ?? undefined;
      if (holder !== this.opts.identity && this.held.has(shard)) this.lose(shard);
      views.push({ shard, holder, expired: !!l && !!holder && expiredFor(l) >= 0 });
    }
    const plan = planShards({
      shards: views,
      members,
      identity: this.opts.identity,
      releasing: [...this.releasing.keys()],
    });

    // Give up first (work stops before the holder is cleared), then renew and take.
    for (const shard of plan.release) {
      this.lose(shard);
      this.log.info({ shard }, "releasing a shard to rebalance");
      this.releasing.set(shard, this.giveUp(shard));
    }
    const renew = views
      .filter((v) => v.holder === this.opts.identity && !this.releasing.has(v.shard))
      .map((v) => v.shard);
    await Promise.all([
      this.claim(this.memberLease(), byName.get(this.memberLease())),
      ...[...renew, ...plan.acquire].map((s) => this.claimShard(s, byName)),
      ...stale.map((l) => this.deleteStale(l)),
    ]);
  }

  /** Clear our holder on a shard given up, once its work has drained (the round does not wait). */
  private async giveUp(shard: number): Promise<void> {
    try {
      await this.drained(shard);
      // Read fresh: the LIST's version is older than our renewals since.
      await this.release(this.shardLease(shard));
    } finally {
      this.releasing.delete(shard);
    }
  }

  /** The shard's work has ended, or the renew deadline passed waiting for it. */
  private async drained(shard: number): Promise<void> {
    if (!this.opts.drain) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.opts.drain(shard),
      new Promise<void>((r) => {
        timer = setTimeout(r, this.renewDeadlineMs);
      }),
    ]);
    clearTimeout(timer);
  }

  private async claimShard(shard: number, byName: Map<string, Lease>): Promise<void> {
    const attemptedAt = { monotonic: performance.now(), wall: Date.now() };
    try {
      if (await this.claim(this.shardLease(shard), byName.get(this.shardLease(shard)))) {
        this.renewed(shard, attemptedAt);
      }
    } catch (err) {
      if (!this.stopping.signal.aborted)
        this.log.warn({ shard, err: errorMessage(err) }, "could not take or renew a shard");
    }
  }

  /** Create or take over `name` with us as holder (a CAS on its resourceVersion); false on a conflict. */
  private async claim(name: string, lease: Lease | undefined): Promise<boolean> {
    const now = microTime();
    const mine: LeaseSpec = {
      holderIdentity: this.opts.identity,
      leaseDurationSeconds: Math.max(1, Math.ceil(this.leaseDurationMs / 1000)),
      renewTime: now,
    };
    try {
      if (!lease) {
        await this.request("POST", this.path, {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: {
            name,
            namespace: this.opts.namespace,
            labels: { [this.opts.groupLabel]: this.opts.name },
          },
          spec: { ...mine, acquireTime: now, leaseTransitions: 0 },
        });
        return true;
      }
      const spec = lease.spec ?? {};
      const ours = spec.holderIdentity === this.opts.identity;
      const next: LeaseSpec = ours
        ? { ...spec, ...mine }
        : {
            ...mine,
            acquireTime: now,
            leaseTransitions: (spec.leaseTransitions ?? 0) + (spec.holderIdentity ? 1 : 0),
          };
      await this.request("PUT", `${this.path}/${name}`, {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: lease.metadata,
        spec: next,
      });
      return true;
    } catch (err) {
      if (apiStatus(err) === 409) return false; // another replica wrote first
      throw err;
    }
  }

  /** Clear our holder on `name` (read fresh when not given) so the next claimant need not wait. */
  private async release(name: string, lease?: Lease): Promise<void> {
    try {
      const l =
        lease ?? (await this.request<Lease>("GET", `${this.path}/${name}`, undefined, {}, false));
      if (l.spec?.holderIdentity !== this.opts.identity) return;
      const spec = {
        ...l.spec,
        holderIdentity: null,
        leaseDurationSeconds: 1,
        renewTime: microTime(),
      };
      await this.request("PUT", `${this.path}/${name}`, { ...l, spec }, {}, false);
    } catch (err) {
      this.log.warn({ lease: name, err: errorMessage(err) }, "could not release; it will expire");
    }
  }

  private async deleteStale(l: Lease): Promise<void> {
    await this.request("DELETE", `${this.path}/${l.metadata.name}`, {
      preconditions: { resourceVersion: l.metadata.resourceVersion },
    }).catch(() => undefined);
  }

  /** A claim of `shard` that started at `attemptedAt` succeeded: act on it until attemptedAt + renewDeadline. */
  private renewed(shard: number, attemptedAt: Clocks): void {
    if (this.stopping.signal.aborted) return;
    const until = {
      monotonic: attemptedAt.monotonic + this.renewDeadlineMs,
      wall: attemptedAt.wall + this.renewDeadlineMs,
    };
    const left = Math.min(until.monotonic - performance.now(), until.wall - Date.now());
    // A claim that took longer than the deadline (we were paused meanwhile) proves nothing.
    if (left <= 0) return void this.holds(shard);
    const previous = this.held.get(shard);
    if (previous) clearTimeout(previous.timer);
    const timer = setTimeout(() => {
      this.log.error({ shard }, "could not renew a shard within the renew deadline");
      this.lose(shard);
    }, left);
    timer.unref();
    this.held.set(shard, { until, timer });
    if (!previous) {
      this.log.info({ shard }, "took a shard");
      this.callback(() => this.opts.onStarted(shard));
    }
  }

  private lose(shard: number): void {
    const h = this.held.get(shard);
    if (!h) return;
    clearTimeout(h.timer);
    this.held.delete(shard);
    this.log.info({ shard }, "stopped a shard");
    this.callback(() => this.opts.onStopped(shard));
  }

  private callback(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error({ err: String(err) }, "shard callback failed");
    }
  }

  /** One API call, abandoned when it outlives the renew deadline (or, while campaigning, when we stop). */
  private request<T>(
    method: "GET" | "POST" | "PUT" | "DELETE",
    path: string,
    body?: unknown,
    query: Record<string, string> = {},
    campaigning = true,
  ): Promise<T> {
    const timeout = AbortSignal.timeout(this.renewDeadlineMs);
    const signal = campaigning ? AbortSignal.any([this.stopping.signal, timeout]) : timeout;
    return rawRequest<T>(this.opts.kubeConfig, method, path, { body, query, signal });
  }
}
