/** How long a Lease is held, renewed within, and retried: client-go's ratios by default. */
export interface LeaseTimings {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

/**
 * The timings of a Lease holder (the leader election and the shard elector
 * alike), defaults filled in. A holder must renew before its lease runs out and
 * retry more often than it must renew: anything else is refused up front.
 */
export function leaseTimings(opts: Partial<LeaseTimings>, user: string): LeaseTimings {
  const leaseDurationMs = opts.leaseDurationMs ?? 15_000;
  const renewDeadlineMs = opts.renewDeadlineMs ?? Math.round((leaseDurationMs * 2) / 3);
  const retryPeriodMs = opts.retryPeriodMs ?? Math.max(100, Math.round(leaseDurationMs / 7.5));
  if (!(renewDeadlineMs < leaseDurationMs && retryPeriodMs < renewDeadlineMs)) {
    throw new Error(`${user} needs retryPeriod < renewDeadline < leaseDuration`);
  }
  return { leaseDurationMs, renewDeadlineMs, retryPeriodMs };
}
