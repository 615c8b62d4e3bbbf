// A token bucket: `qps` tokens a second, at most `burst` saved up. Callers wait
// (in FIFO order) instead of being refused, like client-go's client-side limiter.
// Hand-written: twenty lines, and the npm limiters either poll or drop requests.
export class TokenBucket {
  private tokens: number;
  private last = performance.now();
  private tail: Promise<void> = Promise.resolve();

  constructor(
    private readonly qps: number,
    private readonly burst: number,
  ) {
    if (!(qps > 0) || !(burst >= 1)) throw new Error("qps must be > 0 and burst >= 1");
    this.tokens = burst;
  }

  /** Resolves when a token is available; calls are served in order. */
  take(): Promise<void> {
    this.tail = this.tail.then(() => this.next());
    return this.tail;
  }

  private async next(): Promise<void> {
    this.refill();
    if (this.tokens < 1) {
      const waitMs = ((1 - this.tokens) / this.qps) * 1000;
      await new Promise((r) => setTimeout(r, waitMs));
      this.refill();
    }
    this.tokens -= 1;
  }

  private refill(): void {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.qps);
    this.last = now;
  }
}
