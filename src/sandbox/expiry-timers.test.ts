import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ExpiryTimers } from "./expiry-timers.js";

describe("ExpiryTimers", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("enqueues a key once its expiry has passed, whatever the retry backoff does", () => {
    const enqueued: string[] = [];
    const timers = new ExpiryTimers((key) => enqueued.push(key));
    timers.arm("ns/a", 5000);
    vi.advanceTimersByTime(5000);
    expect(enqueued).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(enqueued).toEqual(["ns/a"]);
  });

  it("keeps one timer per key: the last failure's", () => {
    const enqueued: string[] = [];
    const timers = new ExpiryTimers((key) => enqueued.push(key));
    timers.arm("ns/a", 5000);
    timers.arm("ns/a", 1000);
    vi.advanceTimersByTime(10_000);
    expect(enqueued).toEqual(["ns/a"]);
    timers.arm("ns/b", 1000);
    timers.arm("ns/b", undefined); // gone, or being deleted: nothing to wait for
    timers.arm("ns/c", 1000);
    timers.clear();
    vi.advanceTimersByTime(10_000);
    expect(enqueued).toEqual(["ns/a"]);
  });
});
