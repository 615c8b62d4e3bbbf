// The EventRecorder against a real HTTP server that holds every request until
// the test lets it go: how many Event writes are in flight at once, and what a
// full queue drops.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { silentLogger } from "../observability/logger.js";
import { EventRecorder } from "./events.js";

let server: Server;
let held: { req: IncomingMessage; res: ServerResponse }[] = [];
let answered = 0;
let kc: k8s.KubeConfig;

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on("end", () => held.push({ req, res }));
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
  held = [];
  answered = 0;
});

/** Answer every request held so far. */
function release(): void {
  for (const { res } of held.splice(0)) {
    res.writeHead(201, { "content-type": "application/json" });
    res.end("{}");
    answered++;
  }
}

const obj = (i: number) => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { name: `x${i}`, namespace: "a", uid: `u${i}` },
});

describe("EventRecorder write pacing", () => {
  it.each([
    { maxInFlight: 1, maxQueued: 100, events: 5, wantRounds: 5, wantWritten: 5 },
    { maxInFlight: 2, maxQueued: 100, events: 5, wantRounds: 3, wantWritten: 5 },
    // 2 in flight and 1 waiting: the 2 after are dropped.
    { maxInFlight: 2, maxQueued: 1, events: 5, wantRounds: 2, wantWritten: 3 },
  ])(
    "$maxInFlight in flight, $maxQueued queued at most, $events distinct events: $wantWritten written in $wantRounds rounds",
    async ({ maxInFlight, maxQueued, events, wantRounds, wantWritten }) => {
      const recorder = new EventRecorder({
        kubeConfig: kc,
        component: "test",
        instance: "a",
        log: silentLogger(),
        maxInFlight,
        maxQueued,
      });
      for (let i = 0; i < events; i++) recorder.record(obj(i), "Normal", "Seen", `event ${i}`);
      const flushed = recorder.flush();
      let rounds = 0;
      while (answered < wantWritten) {
        // As many as the limit allows arrive; never more, even given time.
        await vi.waitFor(() =>
          expect(held.length).toBe(Math.min(maxInFlight, wantWritten - answered)),
        );
        await new Promise((r) => setTimeout(r, 30));
        expect(held.length).toBeLessThanOrEqual(maxInFlight);
        release();
        rounds++;
      }
      await flushed;
      expect(rounds).toBe(wantRounds);
      expect(answered).toBe(wantWritten);
      expect(held).toHaveLength(0);
    },
  );
});
