import { describe, expect, it } from "vitest";
import { isRfc3339, parseTime, rfc3339 } from "./time.js";

describe("parseTime", () => {
  it.each([
    ["2024-01-01T00:00:00Z", Date.UTC(2024, 0, 1)],
    ["2024-01-01t00:00:00z", Date.UTC(2024, 0, 1)],
    ["2024-01-01T00:00:00.5Z", Date.UTC(2024, 0, 1) + 500],
    ["2024-01-01T00:00:00.123456789Z", Date.UTC(2024, 0, 1) + 123],
    ["2024-01-01T02:00:00+02:00", Date.UTC(2024, 0, 1)],
    ["2023-12-31T22:30:00-01:30", Date.UTC(2024, 0, 1)],
    ["2024-02-29T23:59:59Z", Date.UTC(2024, 1, 29, 23, 59, 59)],
  ])("reads %s", (value, ms) => {
    expect(parseTime(value)).toBe(ms);
  });

  it("reads years below 100 literally", () => {
    expect(new Date(parseTime("0001-01-01T00:00:00Z")!).toISOString()).toBe(
      "0001-01-01T00:00:00.000Z",
    );
  });

  it.each([
    "2024-01-01",
    "2024-01-01T00:00Z",
    "2024-01-01T00:00:00",
    "2024-01-01 00:00:00Z",
    "2024-02-30T00:00:00Z",
    "2023-02-29T00:00:00Z",
    "2024-13-01T00:00:00Z",
    "2024-00-01T00:00:00Z",
    "2024-01-01T24:00:00Z",
    "2024-01-01T00:60:00Z",
    "2024-01-01T00:00:60Z",
    "2024-01-01T00:00:00x5Z",
    "2024-01-01T00:00:00+24:00",
    "2024-01-01T00:00:00Zt",
  ])("refuses %s", (value) => {
    expect(parseTime(value)).toBeUndefined();
    expect(isRfc3339(value)).toBe(false);
  });
});

describe("rfc3339", () => {
  it("writes second precision in UTC, as metav1.Time does", () => {
    expect(rfc3339(Date.UTC(2024, 0, 1, 0, 0, 0, 999))).toBe("2024-01-01T00:00:00Z");
    expect(rfc3339(new Date("2024-01-01T01:00:00+01:00"))).toBe("2024-01-01T00:00:00Z");
    expect(rfc3339("2024-06-01T12:34:56.789Z")).toBe("2024-06-01T12:34:56Z");
  });
});
