// Leader election on a coordination.k8s.io/v1 Lease, as client-go does it:
// - acquire when the Lease is free (no holder) or its holder has not renewed
//   within the lease duration, measured on our own clock from when we saw the
//   record change, so clock skew between replicas does not matter;
// - renew every retry period, with optimistic concurrency on resourceVersion:
//   of two candidates writing the same version, only one wins;
// - a leader that has not renewed within the renew deadline (shorter than the
//   lease duration) stops leading, by a timer, even while a request hangs, so it
//   stops before anyone else can take over; it also stops at once on seeing
//   another holder;
// - a process paused past its deadline (SIGSTOP, a long GC) resumes with its
//   timers late and its I/O callbacks first: holdsLease() compares the deadline
//   with the clocks themselves (monotonic, and the wall clock, which also counts
//   a suspended machine), steps down on the spot when it has passed, and is
//   what the controller's write gate asks before every write;
// - release on shutdown (no holder), so a successor takes over at once.
import type * as k8s from "@kubernetes/client-node";
import type { Logger } from "../observability/logger.js";
import { sleep } from "./backoff.js";
import { apiStatus, errorMessage } from "./errors.js";
import type { Lease, LeaseSpec } from "./lease.js";
import { leaseTimings } from "./lease-timings.js";
import { microTime, rawRequest } from "./raw-request.js";

export interface LeaderElectionOptions {
  kubeConfig: k8s.KubeConfig;
  namespace: string;
  name: string;
  identity: string;
  /** How long a Lease holds without renewal (default 15 s). */
  leaseDurationMs?: number;
  /** A leader that cannot renew for this long steps down (default 10 s; < leaseDurationMs). */
  renewDeadlineMs?: number;
  /** Time between attempts to acquire or renew (default 2 s). */
  retryPeriodMs?: number;
  onStartedLeading(): void;
  onStoppedLeading(): void;
  log: Logger;
}

export class LeaderElector {
  private leading = false;
  private loop: Promise<void> | undefined;
  private deadline: NodeJS.Timeout | undefined;
  /** Until when the last renewal lets us lead, on both clocks. */
  private leadUntil = { monotonic: 0, wall: 0 };
  /** The Lease as last seen, and when (our clock) it last changed. */
  private observed: { record: string; at: number } | undefined;
  private readonly stopping = new AbortController();
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly path: string;
  private readonly log: Logger;

  constructor(private readonly opts: LeaderElectionOptions) {
    ({
      leaseDurationMs: this.leaseDurationMs,
      renewDeadlineMs: this.renewDeadlineMs,
      retryPeriodMs: this.retryPeriodMs,
    } = leaseTimings(opts, "leader election"));
    this.path = `/apis/coordination.k8s.io/v1/namespaces/${opts.namespace}/leases`;
    this.log = opts.log.child({ lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
  }

  isLeader(): boolean {
    return this.leading;
  }

  /**
   * Whether we lead and the renew deadline has not passed by the clocks,
   * checked now rather than by a timer; steps down (synchronously, so
   * onStoppedLeading runs first) when it has.
   */
  holdsLease(): boolean {
    if (!this.leading) return false;
    if (performance.now() < this.leadUntil.monotonic && Date.now() < this.leadUntil.wall) {
      return true;
    }
    this.log.error("the renew deadline passed (was this process paused?); stepping down");
    this.setLeading(false);
    return false;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stop campaigning (and leading); by default release the Lease so a successor need not wait it out. */
  async stop({ release = true } = {}): Promise<void> {
    this.stopping.abort();
    await this.loop;
    const wasLeading = this.leading;
    this.setLeading(false);
    if (release && wasLeading) await this.release();
  }

  /** Give the Lease up if we hold it: clear the holder so the next candidate takes it at once. */
  async release(): Promise<void> {
    try {
      const path = `${this.path}/${this.opts.name}`;
      const lease = await this.request<Lease>("GET", path, undefined, { campaigning: false });
      if (lease.spec?.holderIdentity !== this.opts.identity) return;
      const now = microTime();
      const spec = { ...lease.spec, holderIdentity: null, leaseDurationSeconds: 1, renewTime: now };
      await this.request("PUT", path, { ...lease, spec }, { campaigning: false });
      this.log.info("released the lease");
    } catch (err) {
      this.log.warn(
        { err: errorMessage(err) },
        "could not release the lease; a successor will wait it out",
      );
    }
  }

  private async run(): Promise<void> {
    while (!this.stopping.signal.aborted) {
      // After a pause, step down before anything else: renewing comes second.
      this.holdsLease();
      const attemptedAt = { monotonic: performance.now(), wall: Date.now() };
      try {
        const outcome = await this.tryAcquireOrRenew();
        if (outcome === "holding") this.renewed(attemptedAt);
        else if (outcome === "heldByOther") this.setLeading(false);
        // "conflict": keep leading until the deadline timer says otherwise.
      } catch (err) {
        if (!this.stopping.signal.aborted) {
          this.log.warn({ err: errorMessage(err) }, "could not acquire or renew the lease");
        }
      }
      await sleep(this.retryPeriodMs, this.stopping.signal);
    }
  }

  /** A renewal that started at `attemptedAt` succeeded: lead until attemptedAt + renewDeadline. */
  private renewed(attemptedAt: { monotonic: number; wall: number }): void {
    if (this.stopping.signal.aborted) return;
    this.leadUntil = {
      monotonic: attemptedAt.monotonic + this.renewDeadlineMs,
      wall: attemptedAt.wall + this.renewDeadlineMs,
    };
    const left = Math.min(
      this.leadUntil.monotonic - performance.now(),
      this.leadUntil.wall - Date.now(),
    );
    // A renewal that took longer than the deadline (we were paused meanwhile) proves nothing.
    if (left <= 0) return void this.holdsLease();
    this.setLeading(true);
    clearTimeout(this.deadline);
    this.deadline = setTimeout(() => {
      this.log.error("could not renew the lease within the renew deadline; stepping down");
      this.setLeading(false);
    }, left);
    this.deadline.unref();
  }

  private setLeading(leading: boolean): void {
    if (!leading) clearTimeout(this.deadline);
    if (leading === this.leading) return;
    this.leading = leading;
    this.log.info(leading ? "became leader" : "stopped leading");
    try {
      if (leading) this.opts.onStartedLeading();
      else this.opts.onStoppedLeading();
    } catch (err) {
      this.log.error({ err: String(err) }, "leader election callback failed");
    }
  }

  private async tryAcquireOrRenew(): Promise<"holding" | "heldByOther" | "conflict"> {
    const now = microTime();
    const mine: LeaseSpec = {
      holderIdentity: this.opts.identity,
      leaseDurationSeconds: Math.max(1, Math.ceil(this.leaseDurationMs / 1000)),
      renewTime: now,
    };
    let lease: Lease;
    try {
      lease = await this.request<Lease>("GET", `${this.path}/${this.opts.name}`);
    } catch (err) {
      if (apiStatus(err) !== 404) throw err;
      const created = {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name: this.opts.name, namespace: this.opts.namespace },
        spec: { ...mine, acquireTime: now, leaseTransitions: 0 },
      };
      return this.write("POST", this.path, created);
    }

    const spec = lease.spec ?? {};
    const record = JSON.stringify(spec);
    if (this.observed?.record !== record) this.observed = { record, at: performance.now() };
    const holder = spec.holderIdentity;
    if (holder && holder !== this.opts.identity) {
      const durationMs = (spec.leaseDurationSeconds ?? 0) * 1000;
      if (performance.now() - this.observed.at < durationMs) return "heldByOther";
    }
    const next: LeaseSpec =
      holder === this.opts.identity
        ? { ...spec, ...mine }
        : {
            ...mine,
            acquireTime: now,
            leaseTransitions: (spec.leaseTransitions ?? 0) + (holder ? 1 : 0),
          };
    // The GET's resourceVersion makes this a compare-and-swap.
    return this.write("PUT", `${this.path}/${this.opts.name}`, { ...lease, spec: next });
  }

  private async write(method: "POST" | "PUT", path: string, body: unknown) {
    try {
      await this.request(method, path, body);
      return "holding" as const;
    } catch (err) {
      if (apiStatus(err) === 409) return "conflict" as const; // another candidate wrote first
      throw err;
    }
  }

  /** One API call, abandoned when it outlives the renew deadline (or, while campaigning, when we stop). */
  private request<T>(
    method: "GET" | "POST" | "PUT",
    path: string,
    body?: unknown,
    { campaigning = true } = {},
  ): Promise<T> {
    const timeout = AbortSignal.timeout(this.renewDeadlineMs);
    const signal = campaigning ? AbortSignal.any([this.stopping.signal, timeout]) : timeout;
    return rawRequest<T>(this.opts.kubeConfig, method, path, { body, signal });
  }
}
