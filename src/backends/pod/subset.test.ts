import { describe, expect, it } from "vitest";
import { containsAll } from "./subset.js";

describe("containsAll", () => {
  it("ignores what the apiserver added", () => {
    expect(containsAll({ a: 1, clusterIP: "10.0.0.1" }, { a: 1 })).toBe(true);
  });
  it("notices a changed or missing field", () => {
    expect(containsAll({ a: 2 }, { a: 1 })).toBe(false);
    expect(containsAll({}, { a: 1 })).toBe(false);
  });
  it("compares lists element by element and by length", () => {
    expect(containsAll([{ port: 80, protocol: "TCP" }], [{ port: 80 }])).toBe(true);
    expect(containsAll([{ port: 80 }, { port: 81 }], [{ port: 80 }])).toBe(false);
  });
  it("treats an empty list as matching an absent one (the apiserver drops them)", () => {
    expect(containsAll({}, { ingress: [] })).toBe(true);
    expect(containsAll({ ingress: [{}] }, { ingress: [] })).toBe(false);
  });
});
