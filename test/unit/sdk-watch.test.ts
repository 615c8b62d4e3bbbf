// until(): the SDK's one way to wait, with hand-driven sources (the watch
// source itself runs against the real apiserver in test/integration/sdk-claim.test.ts).
import { describe, expect, it } from "vitest";
import { type Source, until } from "../../packages/sdk/src/watch.js";

/** A source driven by the test: fire() reports a change; stopped says whether until() let go of it. */
function manual(opts: { atStart?: boolean } = {}) {
  const s = {
    fire: () => {},
    stopped: false,
    source: ((changed) => {
      s.fire = changed;
      if (opts.atStart) changed();
      return () => {
        s.stopped = true;
      };
    }) as Source,
  };
  return s;
}

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

describe("until", () => {
  it("checks on each change and settles with the first value; every source is stopped", async () => {
    const a = manual();
    const b = manual();
    let state = 0;
    let checks = 0;
    const p = until({
      sources: [a.source, b.source],
      check: () => {
        checks++;
        return state >= 2 ? { value: `state ${state}` } : undefined;
      },
      timeoutMs: 5000,
      onTimeout: () => new Error("timeout"),
    });
    expect(checks).toBe(0); // nothing to judge until a source says so
    state = 1;
    a.fire();
    await tick();
    expect(checks).toBe(1);
    state = 2;
    b.fire();
    await expect(p).resolves.toBe("state 2");
    expect(a.stopped && b.stopped).toBe(true);
  });

  it("runs one check at a time and again after a change that came during it", async () => {
    const a = manual();
    let release!: () => void;
    let running = 0;
    let most = 0;
    let calls = 0;
    const p = until({
      sources: [a.source],
      check: async () => {
        calls++;
        running++;
        most = Math.max(most, running);
        if (calls === 1) await new Promise<void>((r) => (release = r));
        running--;
        return calls >= 2 ? { value: calls } : undefined;
      },
      timeoutMs: 5000,
      onTimeout: () => new Error("timeout"),
    });
    a.fire();
    await tick();
    a.fire(); // during the first check
    a.fire();
    release();
    await expect(p).resolves.toBe(2);
    expect(most).toBe(1);
  });

  it("asks again after retryAfterMs without any change", async () => {
    const a = manual({ atStart: true });
    let calls = 0;
    const t0 = performance.now();
    const v = await until({
      sources: [a.source],
      check: () => (++calls < 3 ? { retryAfterMs: 30 } : { value: calls }),
      timeoutMs: 5000,
      onTimeout: () => new Error("timeout"),
    });
    expect(v).toBe(3);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(55);
  });

  it("fails with what the check throws, and stops its sources", async () => {
    const a = manual({ atStart: true });
    await expect(
      until({
        sources: [a.source],
        check: () => {
          throw new Error("claim failed");
        },
        timeoutMs: 5000,
        onTimeout: () => new Error("timeout"),
      }),
    ).rejects.toThrow("claim failed");
    expect(a.stopped).toBe(true);
  });

  it("stops a source that settled the wait while it was starting", async () => {
    const first = manual({ atStart: true });
    const second = manual();
    await expect(
      until({
        sources: [first.source, second.source],
        check: () => ({ value: 1 }),
        timeoutMs: 5000,
        onTimeout: () => new Error("timeout"),
      }),
    ).resolves.toBe(1);
    expect(first.stopped && second.stopped).toBe(true);
  });

  it("times out with onTimeout's error, stopping sources and the retry timer", async () => {
    const a = manual({ atStart: true });
    let calls = 0;
    await expect(
      until({
        sources: [a.source],
        check: () => {
          calls++;
          return { retryAfterMs: 10 };
        },
        timeoutMs: 100,
        onTimeout: () => new Error("not ready after 100 ms"),
      }),
    ).rejects.toThrow("not ready after 100 ms");
    expect(a.stopped).toBe(true);
    const after = calls;
    await tick(50);
    expect(calls).toBe(after);
  });

  it("a hung check does not hold the timeout", async () => {
    const a = manual({ atStart: true });
    const t0 = performance.now();
    await expect(
      until({
        sources: [a.source],
        check: () => new Promise<undefined>(() => {}),
        timeoutMs: 50,
        onTimeout: () => new Error("timeout"),
      }),
    ).rejects.toThrow("timeout");
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(a.stopped).toBe(true);
  });
});
