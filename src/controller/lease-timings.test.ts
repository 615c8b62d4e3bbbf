import { describe, expect, it } from "vitest";
import { leaseTimings } from "./lease-timings.js";

describe("leaseTimings", () => {
  it("fills in client-go's ratios", () => {
    expect(leaseTimings({}, "x")).toEqual({
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
    });
    expect(leaseTimings({ leaseDurationMs: 600 }, "x")).toEqual({
      leaseDurationMs: 600,
      renewDeadlineMs: 400,
      retryPeriodMs: 100,
    });
  });

  it.each([
    [{ leaseDurationMs: 1000, renewDeadlineMs: 1000 }],
    [{ leaseDurationMs: 1000, renewDeadlineMs: 500, retryPeriodMs: 500 }],
  ])("refuses %o, naming who asked", (opts) => {
    expect(() => leaseTimings(opts, "sharding")).toThrow(
      "sharding needs retryPeriod < renewDeadline < leaseDuration",
    );
  });
});
