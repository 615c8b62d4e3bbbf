// Wait for a condition instead of sleeping: poll until `fn` returns without
// throwing (and, if it returns a value, that value), or fail with its last error.
export async function eventually<T>(
  fn: () => Promise<T> | T,
  { timeout = 20_000, interval = 100 }: { timeout?: number; interval?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeout;
  let lastError: unknown;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const message = lastError instanceof Error ? lastError.message : String(lastError);
      throw new Error(`not true within ${timeout} ms: ${message}`, { cause: lastError });
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}
