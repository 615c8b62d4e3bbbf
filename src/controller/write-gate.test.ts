// The gate against a real HTTP server: what it refuses never reaches the server,
// even when it closes after the request authenticated (the paused-leader case).
import { AsyncLocalStorage } from "node:async_hooks";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { silentLogger } from "../observability/logger.js";
import { EventRecorder } from "./events.js";
import { rawRequest } from "./raw-request.js";
import { gateWrites, NotLeaderError, notLeaderCause, type WriteGate } from "./write-gate.js";

let server: Server;
let received: string[] = [];
let kc: k8s.KubeConfig;

beforeAll(async () => {
  server = createServer((req, res) => {
    received.push(`${req.method} ${req.url}`);
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x" } }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));
beforeEach(() => {
  received = [];
});

const closed: WriteGate = () => {
  throw new NotLeaderError("lost the lease");
};
/** Open for the first `n` questions, closed after: the lease is lost mid-request. */
function closesAfter(n: number): WriteGate & { asked: number } {
  const gate = Object.assign(
    () => {
      if (gate.asked++ >= n) closed();
    },
    { asked: 0 },
  );
  return gate;
}

const post = (c: k8s.KubeConfig) =>
  rawRequest(c, "POST", "/api/v1/namespaces/a/configmaps", { body: {} });

describe("gateWrites", () => {
  it("lets writes through while the gate is open, and reads always", async () => {
    await rawRequest(
      gateWrites(kc, () => {}),
      "POST",
      "/w",
      { body: {} },
    );
    await rawRequest(gateWrites(kc, closed), "GET", "/r");
    expect(received).toEqual(["POST /w", "GET /r"]);
  });

  it.each([
    ["when it authenticates", closed],
    ["between authenticating and writing to the socket", closesAfter(1)],
  ])(
    "refuses a raw write when the gate is closed %s: nothing reaches the server",
    async (_, gate) => {
      await expect(post(gateWrites(kc, gate))).rejects.toBeInstanceOf(NotLeaderError);
      expect(received).toEqual([]);
    },
  );

  it("refuses a typed client's write the same way, in both places", async () => {
    for (const gate of [closed, closesAfter(1)]) {
      const core = gateWrites(kc, gate).makeApiClient(k8s.CoreV1Api);
      const err = await core
        .createNamespacedConfigMap({ namespace: "a", body: { metadata: { name: "x" } } })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(notLeaderCause(err)).toBeInstanceOf(NotLeaderError);
    }
    const gate = closesAfter(2);
    await gateWrites(kc, gate)
      .makeApiClient(k8s.CoreV1Api)
      .createNamespacedConfigMap({ namespace: "a", body: { metadata: { name: "x" } } });
    expect(gate.asked).toBe(2); // once at authentication, once at the socket
    expect(received).toEqual(["POST /api/v1/namespaces/a/configmaps"]);
  });

  it("asks a contextual gate in each request's own async context, at the socket too", async () => {
    // A sharded controller's gate: the answer depends on the reconcile's shard.
    const shard = new AsyncLocalStorage<number>();
    const held = new Set([1]);
    const asked: (number | undefined)[] = [];
    const gate = Object.assign(
      () => {
        const s = shard.getStore();
        asked.push(s);
        if (s === undefined || !held.has(s)) closed();
      },
      { contextual: true },
    );
    const gated = gateWrites(kc, gate);
    const results = await Promise.allSettled([
      shard.run(1, () => rawRequest(gated, "POST", "/held", { body: {} })),
      shard.run(2, () => rawRequest(gated, "POST", "/not-held", { body: {} })),
      rawRequest(gated, "POST", "/outside", { body: {} }),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "rejected"]);
    expect(received).toEqual(["POST /held"]);
    expect(asked.filter((s) => s === 1)).toHaveLength(2); // at authentication and at the socket
  });

  it("sends nothing for a request whose signal aborted while it authenticated", async () => {
    const abort = new AbortController();
    abort.abort(new NotLeaderError("stopped leading"));
    await expect(
      rawRequest(
        gateWrites(kc, () => {}),
        "PATCH",
        "/p",
        { body: {}, signal: abort.signal },
      ),
    ).rejects.toBeInstanceOf(NotLeaderError);
    expect(received).toEqual([]);
  });
});

describe("EventRecorder behind the gate", () => {
  it("sends nothing while the gate is closed, count updates included, and starts afresh once it opens", async () => {
    let open = true;
    const recorder = new EventRecorder({
      kubeConfig: gateWrites(kc, () => {
        if (!open) closed();
      }),
      component: "test",
      instance: "a",
      log: silentLogger(),
      flushMs: 60_000,
    });
    const obj = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x", namespace: "a" } };
    recorder.record(obj, "Normal", "Seen", "first");
    await recorder.flush();
    recorder.record(obj, "Normal", "Seen", "first"); // a repeat: a pending count update
    open = false; // the Lease is lost before the batch is written
    recorder.record(obj, "Warning", "Other", "refused"); // a create, refused
    await recorder.flush();
    expect(received).toEqual(["POST /apis/events.k8s.io/v1/namespaces/a/events"]);

    open = true; // leading again: the refused event is created anew, not counted into nothing
    recorder.record(obj, "Warning", "Other", "refused");
    await recorder.flush();
    // ...and the count the closed gate held back goes out with the next flush.
    const create = "POST /apis/events.k8s.io/v1/namespaces/a/events";
    expect(received.filter((l) => l === create)).toHaveLength(2);
    expect(received.filter((l) => l !== create)).toEqual([
      expect.stringMatching(
        /^PATCH \/apis\/events\.k8s\.io\/v1\/namespaces\/a\/events\/x\.[0-9a-f]{16}$/,
      ),
    ]);
  });
});
