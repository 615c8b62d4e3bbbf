// Leader election on a coordination.k8s.io/v1 Lease, as client-go does it:
// - acquire when the Lease is free or its holder has not renewed within the
//   lease duration (measured on our clock from when we last saw the record
//   change, so clock skew between replicas does not matter);
// - renew every retry period; a leader that cannot renew within the renew
//   deadline stops leading at once, before another replica can take over;
// - optimistic concurrency on resourceVersion: two candidates never both win;
// - release on shutdown (empty holder), so a successor takes over immediately.

import type * as k8s from "@kubernetes/client-node";
import type { Logger } from "../observability/logger.js";
import { sleep } from "./backoff.js";
import { apiStatus } from "./errors.js";
import { rawRequest } from "./raw-request.js";

export interface LeaderElectionOptions {
  kubeConfig: k8s.KubeConfig;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onStartedLeading(): void;
  onStoppedLeading(): void;
  log: Logger;
}

interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number;
}
interface Lease {
  apiVersion: "coordination.k8s.io/v1";
  kind: "Lease";
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: LeaseSpec;
}

/** metav1.MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(d = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

export class LeaderElector {
  private leading = false;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private lastRenew = 0;
  private observed: { record: string; at: number } | undefined;
  private readonly wake = new AbortController();
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly path: string;
  private readonly log: Logger;

  constructor(private readonly opts: LeaderElectionOptions) {
    this.leaseDurationMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? Math.round((this.leaseDurationMs * 2) / 3);
    this.retryPeriodMs =
      opts.retryPeriodMs ?? Math.max(200, Math.round(this.leaseDurationMs / 7.5));
    this.path = `/apis/coordination.k8s.io/v1/namespaces/${opts.namespace}/leases`;
    this.log = opts.log.child({ lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
  }

  isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.loop = this.run();
  }

  /** Stop campaigning; by default release the Lease so a successor need not wait it out. */
  async stop({ release = true } = {}): Promise<void> {
    this.stopped = true;
    this.wake.abort();
    await this.loop;
    const wasLeading = this.leading;
    this.setLeading(false);
    if (release && wasLeading) await this.release();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        const ok = await this.tryAcquireOrRenew();
        if (ok) this.lastRenew = performance.now();
        this.setLeading(ok);
      } catch (err) {
        this.log.warn({ err: String(err) }, "lease update failed");
      }
      // A leader that could not renew in time must assume it lost the lease.
      if (this.leading && performance.now() - this.lastRenew > this.renewDeadlineMs) {
        this.log.error("failed to renew the lease within the renew deadline; stepping down");
        this.setLeading(false);
      }
      await sleep(this.retryPeriodMs, this.wake.signal);
    }
  }

  private setLeading(leading: boolean): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.log.info({ leading }, leading ? "became leader" : "stopped leading");
    if (leading) this.opts.onStartedLeading();
    else this.opts.onStoppedLeading();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = new Date();
    const desired: LeaseSpec = {
      holderIdentity: this.opts.identity,
      leaseDurationSeconds: Math.max(1, Math.round(this.leaseDurationMs / 1000)),
      renewTime: microTime(now),
    };
    let lease: Lease;
    try {
      lease = await rawRequest<Lease>(
        this.opts.kubeConfig,
        "GET",
        `${this.path}/${this.opts.name}`,
      );
    } catch (err) {
      if (apiStatus(err) !== 404) throw err;
      try {
        await rawRequest(this.opts.kubeConfig, "POST", this.path, {
          body: {
            apiVersion: "coordination.k8s.io/v1",
            kind: "Lease",
            metadata: { name: this.opts.name, namespace: this.opts.namespace },
            spec: { ...desired, acquireTime: microTime(now), leaseTransitions: 0 },
          },
        });
        return true;
      } catch (e) {
        if (apiStatus(e) === 409) return false; // another candidate created it first
        throw e;
      }
    }

    const spec = lease.spec ?? {};
    const record = JSON.stringify(spec);
    if (this.observed?.record !== record) this.observed = { record, at: performance.now() };
    const held = !!spec.holderIdentity && spec.holderIdentity !== this.opts.identity;
    const durationMs = (spec.leaseDurationSeconds ?? 0) * 1000;
    if (held && performance.now() - this.observed.at < durationMs) return false;

    const mine = spec.holderIdentity === this.opts.identity;
    const next: LeaseSpec = mine
      ? { ...spec, ...desired }
      : {
          ...desired,
          acquireTime: microTime(now),
          leaseTransitions: (spec.leaseTransitions ?? 0) + (spec.holderIdentity ? 1 : 0),
        };
    try {
      await rawRequest(this.opts.kubeConfig, "PUT", `${this.path}/${this.opts.name}`, {
        body: { ...lease, spec: next },
      });
    } catch (err) {
      if (apiStatus(err) === 409) return false; // someone else wrote first
      throw err;
    }
    return true;
  }

  private async release(): Promise<void> {
    try {
      const lease = await rawRequest<Lease>(
        this.opts.kubeConfig,
        "GET",
        `${this.path}/${this.opts.name}`,
      );
      if (lease.spec?.holderIdentity !== this.opts.identity) return;
      await rawRequest(this.opts.kubeConfig, "PUT", `${this.path}/${this.opts.name}`, {
        body: {
          ...lease,
          spec: {
            ...lease.spec,
            holderIdentity: null,
            acquireTime: null,
            renewTime: null,
            leaseDurationSeconds: 1,
          },
        },
      });
      this.log.info("released the lease");
    } catch (err) {
      this.log.warn(
        { err: String(err) },
        "failed to release the lease; a successor will wait it out",
      );
    }
  }
}
