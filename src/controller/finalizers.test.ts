import { describe, expect, it } from "vitest";
import { finalizersPatch } from "./finalizers.js";

describe("finalizersPatch", () => {
  it("tests that the list is still absent before adding one", () => {
    expect(finalizersPatch(undefined, ["a/b"])).toEqual([
      { op: "test", path: "/metadata/finalizers", value: null },
      { op: "add", path: "/metadata/finalizers", value: ["a/b"] },
    ]);
  });

  it("tests the whole cached list before replacing it", () => {
    expect(finalizersPatch(["x/y", "a/b"], ["x/y"])).toEqual([
      { op: "test", path: "/metadata/finalizers", value: ["x/y", "a/b"] },
      { op: "replace", path: "/metadata/finalizers", value: ["x/y"] },
    ]);
  });
});
