// An aborted reconcile stops its in-flight API calls: against a loopback server
// that never answers, the call ends as soon as the signal aborts.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withSignal } from "./signal.js";

let server: Server;
let kc: k8s.KubeConfig;
let requests = 0;
let received: () => void = () => {};

beforeAll(async () => {
  server = createServer(() => {
    requests++; // and never answer
    received();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "c", cluster: "c", user: "u" }],
    currentContext: "c",
  });
});
afterAll(() => {
  server.closeAllConnections();
  server.close();
});

describe("withSignal", () => {
  it("aborts the request when the signal does, keeping the client's own middleware", async () => {
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const abort = new AbortController();
    const arrived = new Promise<void>((resolve) => {
      received = resolve;
    });
    const call = core.readNamespacedPod({ name: "p", namespace: "ns" }, withSignal(abort.signal));
    // Abort only once the request is in flight (the server holds it unanswered).
    await arrived;
    const aborted = Date.now();
    abort.abort();
    await expect(call).rejects.toThrow(/abort/i);
    expect(Date.now() - aborted).toBeLessThan(2000);
    expect(requests).toBe(1);
  });

  it("changes nothing without a signal", () => {
    const opts = k8s.setHeaderOptions("X-Test", "1");
    expect(withSignal(undefined, opts)).toBe(opts);
    expect(withSignal(undefined)).toBeUndefined();
  });
});
