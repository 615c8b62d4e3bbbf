// The refill rate limit of one pool: a token bucket that is asked, not waited
// on. A reconcile creates what the bucket allows now and comes back when the
// next token is due, so a large refill never holds a worker.
export class RefillLimiter {
  private tokens: number;
  private lastMs: number;

  constructor(
    private perSecond: number,
    private burst: number,
    nowMs: number,
  ) {
    this.tokens = burst;
    this.lastMs = nowMs;
  }

  /** Follow a changed spec.refill without forgetting what was spent. */
  configure(perSecond: number, burst: number): void {
    this.perSecond = perSecond;
    this.burst = burst;
    this.tokens = Math.min(this.tokens, burst);
  }

  /** Take up to `want` tokens; returns how many, and when the next one is due (ms) if short. */
  take(want: number, nowMs: number): { granted: number; nextInMs?: number } {
    this.tokens = Math.min(
      this.burst,
      this.tokens + ((nowMs - this.lastMs) / 1000) * this.perSecond,
    );
    this.lastMs = nowMs;
    const granted = Math.max(0, Math.min(want, Math.floor(this.tokens)));
    this.tokens -= granted;
    if (granted >= want) return { granted };
    return { granted, nextInMs: Math.ceil(((1 - (this.tokens % 1)) / this.perSecond) * 1000) };
  }
}
