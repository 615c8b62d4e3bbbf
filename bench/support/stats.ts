// What every benchmark computes the same way: percentiles of samples, a timed
// loop, and a bounded-concurrency runner. One definition, so figures from
// different benchmarks are comparable.

/**
 * The p-th percentile (0–100) of samples: the sample at rank floor(p/100·n),
 * no interpolation. NaN for no samples.
 */
export function percentile(samples: readonly number[], p: number): number {
  if (!samples.length) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Runs fn `warmup` times untimed, then n times; returns each run's milliseconds. */
export async function timeIt(n: number, fn: () => Promise<unknown>, warmup = 5): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out;
}

/** Runs fn over items with at most `width` in flight, as fast as they complete. */
export async function pool<T>(
  items: readonly T[],
  width: number,
  fn: (item: T) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}
