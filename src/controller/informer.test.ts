import { describe, expect, it } from "vitest";
import { keyOf, trim } from "./informer.js";

describe("trim", () => {
  it("drops managedFields and the last-applied annotation, keeping the rest", () => {
    const obj = trim({
      metadata: {
        name: "a",
        managedFields: [{ manager: "kubectl" }],
        annotations: {
          "kubectl.kubernetes.io/last-applied-configuration": "{...}",
          keep: "me",
        },
        labels: { app: "x" },
      },
    });
    expect(obj).toEqual({
      metadata: { name: "a", annotations: { keep: "me" }, labels: { app: "x" } },
    });
  });
});

describe("keyOf", () => {
  it("is namespace/name, or the name of a cluster-scoped object", () => {
    expect(keyOf({ metadata: { namespace: "ns", name: "a" } })).toBe("ns/a");
    expect(keyOf({ metadata: { name: "node-1" } })).toBe("node-1");
  });
});
