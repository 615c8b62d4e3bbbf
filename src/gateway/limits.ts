// Per-key admission: a rate limit (token bucket refused, not queued: a
// gateway that queued would hold every flood's sockets) and a concurrency cap,
// each keyed by credential and by sandbox. Both maps are bounded: keys are
// dropped least-recently-used first, so a flood of distinct keys costs memory
// proportional to the bound, never to the flood.

/** A map bounded by entries and by age: the oldest is evicted first. */
export class BoundedCache<V> {
  private readonly map = new Map<string, { value: V; expiresAt: number }>();

  constructor(
    private readonly maxEntries: number,
    private readonly ttlMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get(key: string): V | undefined {
    const hit = this.map.get(key);
    if (!hit) return undefined;
    if (hit.expiresAt <= this.now()) {
      this.map.delete(key);
      return undefined;
    }
    return hit.value;
  }

  set(key: string, value: V, ttlMs = this.ttlMs): void {
    this.map.delete(key);
    this.map.set(key, { value, expiresAt: this.now() + ttlMs });
    while (this.map.size > this.maxEntries) this.map.delete(this.map.keys().next().value!);
  }

  delete(key: string): void {
    this.map.delete(key);
  }

  get size(): number {
    return this.map.size;
  }
}

export interface RateLimit {
  /** Sustained requests per second. */
  rps: number;
  /** Requests allowed at once after a quiet period. */
  burst: number;
}

/**
 * How stale a key's place in the eviction order may get: a busy key is moved
 * to the back at most this often (a Map delete and set on every request was
 * a measurable share of the gateway's per-request work).
 */
const LRU_REFRESH_MS = 1000;

/** Token buckets per key; take() answers at once. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; last: number; placed: number }>();

  constructor(
    private readonly limit: RateLimit,
    private readonly maxKeys = 100_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** True when the request may go; false when the key is over its rate. */
  take(key: string): boolean {
    const t = this.now();
    let b = this.buckets.get(key);
    if (!b || t - b.placed >= LRU_REFRESH_MS) {
      // (Re-)inserted: most recently used last, so eviction drops the idlest keys.
      if (b) this.buckets.delete(key);
      b ??= { tokens: this.limit.burst, last: t, placed: t };
      b.placed = t;
      this.buckets.set(key, b);
      while (this.buckets.size > this.maxKeys)
        this.buckets.delete(this.buckets.keys().next().value!);
    }
    b.tokens = Math.min(this.limit.burst, b.tokens + ((t - b.last) / 1000) * this.limit.rps);
    b.last = t;
    const ok = b.tokens >= 1;
    if (ok) b.tokens -= 1;
    return ok;
  }
}

/** In-flight counts per key under a cap. */
export class ConcurrencyLimiter {
  private readonly inFlight = new Map<string, number>();

  constructor(private readonly max: number) {}

  /** A release function when under the cap (call it exactly once), else undefined. */
  acquire(key: string): (() => void) | undefined {
    const n = this.inFlight.get(key) ?? 0;
    if (n >= this.max) return undefined;
    this.inFlight.set(key, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.inFlight.get(key) ?? 1) - 1;
      if (left <= 0) this.inFlight.delete(key);
      else this.inFlight.set(key, left);
    };
  }

  count(key: string): number {
    return this.inFlight.get(key) ?? 0;
  }
}
