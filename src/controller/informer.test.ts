import { KubeConfig } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../observability/logger.js";
import { Informer, isUnreachable, keyOf, trim } from "./informer.js";

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

describe("isUnreachable", () => {
  it.each([
    ["a refused connection (no HTTP status)", new TypeError("fetch failed"), true],
    ["a bad gateway", { statusCode: 502 }, true],
    ["an apiserver not ready", { statusCode: 503 }, true],
    ["a gateway timeout", { statusCode: 504 }, true],
    ["throttling", { statusCode: 429 }, false],
    ["an internal error", { statusCode: 500 }, false],
    ["forbidden", { statusCode: 403 }, false],
  ])("%s", (_, err, expected) => {
    expect(isUnreachable(err)).toBe(expected);
  });
});

describe("Informer.upToDate", () => {
  it("returns once the informer is stopped, even if it never listed", async () => {
    const informer = new Informer({
      kubeConfig: new KubeConfig(),
      apiPath: "/api/v1",
      resource: "configmaps",
      // A LIST that never answers (until aborted).
      list: ({ signal }) =>
        new Promise<never>((_, reject) =>
          signal.addEventListener("abort", () => reject(signal.reason)),
        ),
      log: silentLogger(),
    });
    informer.start();
    let done = false;
    const waiting = informer.upToDate(new AbortController().signal).then(() => {
      done = true;
    });
    await new Promise((r) => setTimeout(r, 120));
    expect(done).toBe(false);
    await informer.stop();
    await waiting;
    expect(done).toBe(true);
  });
});
