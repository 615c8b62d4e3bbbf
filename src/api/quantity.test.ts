import { describe, expect, it } from "vitest";
import { parseQuantity } from "./quantity.js";

describe("parseQuantity", () => {
  it.each([
    ["1", 1],
    ["500m", 0.5],
    ["1.5", 1.5],
    ["512Mi", 512 * 2 ** 20],
    ["1Gi", 2 ** 30],
    ["2G", 2e9],
    ["100k", 1e5],
    ["1e3", 1000],
    ["250u", 0.00025],
    [".5", 0.5],
    [3, 3],
  ] as const)("%s", (text, value) => {
    expect(parseQuantity(text)).toBeCloseTo(value, 9);
  });

  it.each(["", "Mi", "1.2.3Mi", "1 Gi", "1Qi"])("rejects %j", (text) => {
    expect(() => parseQuantity(text)).toThrow(/not a Kubernetes quantity/);
  });
});
