// Resume on use, at the gateway (docs/idle.md): a call to a sandbox the
// operator suspended for idleness resumes it (a merge patch of
// spec.suspended, the gateway's only write), waits until the Sandbox is Ready
// in the informer cache and its port answers, then proceeds; past the bound
// it is a 503 with Retry-After. Concurrent calls to the same sandbox share
// one wake. A sandbox a person suspended is a 409 that says how to resume it.
//
// And the other half of idleness: port traffic the gateway proxies is
// reported to the sandbox's agent (POST /v1/activity), at most once per
// REPORT_INTERVAL_MS per sandbox per replica, so the controller's idle check
// sees it without a write anywhere.
import http from "node:http";
import { Counter, Histogram, type Registry } from "prom-client";
import { answers } from "../dataplane/answers.js";
import { asleep, resumePatch, WakeRefusedError, WakeTimeoutError, wake } from "../idle/wake.js";
import type { Logger } from "../observability/logger.js";
import type { Directory, Reach, SandboxObject } from "./directory.js";
import { GatewayError } from "./errors.js";
import { GATEWAY_METRIC_PREFIX } from "./metrics.js";

/** Default bound on resume-and-wait (--resume-timeout). */
export const DEFAULT_RESUME_TIMEOUT_MS = 60_000;
/** Port traffic is reported to the agent at most this often per sandbox (idleTimeout is at least 10 s). */
export const REPORT_INTERVAL_MS = 2000;
/** Between connection attempts while a woken sandbox's port comes up. */
const REACH_POLL_MS = 50;

export interface WakerOptions {
  directory: Directory;
  /** The merge patch that resumes (the gateway's RBAC: patch on sandboxes). */
  patch(s: SandboxObject, body: object): Promise<void>;
  timeoutMs: number;
  registry?: Registry;
  log: Logger;
}

export class Waker {
  private readonly waking = new Map<string, Promise<SandboxObject>>();
  private readonly reported = new Map<string, number>();
  private readonly reportAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  private readonly resumes: Counter<"result">;
  private readonly seconds: Histogram;

  constructor(private readonly o: WakerOptions) {
    const registers = o.registry ? [o.registry] : [];
    this.resumes = new Counter({
      name: `${GATEWAY_METRIC_PREFIX}_resumes_total`,
      help: "Calls that met a suspended sandbox, by result (resumed, joined another call's resume, refused, timeout)",
      labelNames: ["result"] as const,
      registers,
    });
    this.seconds = new Histogram({
      name: `${GATEWAY_METRIC_PREFIX}_resume_wait_seconds`,
      help: "Time a call waited for a suspended sandbox to serve again",
      buckets: [0.25, 0.5, 1, 2, 5, 10, 30, 60, 120],
      registers,
    });
  }

  /**
   * The sandbox, serving: as it is when awake (no cost), else after resuming
   * it and waiting. `target` says what must answer before the call proceeds.
   */
  async awake(
    sandbox: SandboxObject,
    target: (s: SandboxObject, reach: Reach) => Promise<{ host: string; port: number }>,
  ): Promise<SandboxObject> {
    if (!asleep(sandbox)) return sandbox;
    const key = `${sandbox.metadata.namespace}/${sandbox.metadata.name}`;
    let p = this.waking.get(key);
    if (p) this.resumes.inc({ result: "joined" });
    else {
      p = this.wake(sandbox, target).finally(() => this.waking.delete(key));
      this.waking.set(key, p);
    }
    return p;
  }

  private async wake(
    sandbox: SandboxObject,
    target: (s: SandboxObject, reach: Reach) => Promise<{ host: string; port: number }>,
  ): Promise<SandboxObject> {
    const started = performance.now();
    const deadline = Date.now() + this.o.timeoutMs;
    const ns = sandbox.metadata.namespace!;
    const name = sandbox.metadata.name!;
    const retryAfter = Math.max(1, Math.ceil(this.o.timeoutMs / 4000));
    const timeout = (why: string) => {
      this.resumes.inc({ result: "timeout" });
      return new GatewayError(503, "SANDBOX_RESUMING", why, retryAfter);
    };
    let woken: SandboxObject;
    try {
      ({ sandbox: woken } = await wake<SandboxObject>({
        read: () => this.o.directory.get(ns, name),
        resume: (s) => this.o.patch(s, resumePatch(s.metadata.uid)),
        timeoutMs: this.o.timeoutMs,
        pollMs: REACH_POLL_MS,
      }));
    } catch (err) {
      if (err instanceof WakeRefusedError) {
        this.resumes.inc({ result: "refused" });
        throw new GatewayError(409, err.code, err.message);
      }
      if (err instanceof WakeTimeoutError) throw timeout(err.message);
      this.resumes.inc({ result: "error" });
      throw new GatewayError(
        503,
        "SANDBOX_RESUMING",
        `resuming the sandbox failed: ${(err as Error).message}`,
        retryAfter,
      );
    }
    // Ready says the workload runs; the call needs its port to answer (the
    // agent, or the workload's server, may still be binding it).
    const reach = this.o.directory.reach(woken);
    reach.forget(woken); // the endpoint cached before the suspension is gone
    let last = "";
    for (;;) {
      try {
        const to = await target(woken, reach);
        if (await answers(to.host, to.port)) break;
        last = `${to.host}:${to.port} refused the connection`;
      } catch (err) {
        last = (err as Error).message;
      }
      reach.forget(woken);
      if (Date.now() >= deadline)
        throw timeout(
          `sandbox ${ns}/${name} is Ready again but did not answer within ${this.o.timeoutMs} ms: ${last}`,
        );
      await new Promise((r) => setTimeout(r, REACH_POLL_MS));
    }
    this.resumes.inc({ result: "resumed" });
    const seconds = (performance.now() - started) / 1000;
    this.seconds.observe(seconds);
    this.o.log.info(
      { sandbox: `${ns}/${name}`, ms: Math.round(seconds * 1000) },
      "resumed a suspended sandbox for a call",
    );
    return this.o.directory.get(ns, name) ?? woken;
  }

  /**
   * Port traffic to a sandbox: tell its agent, at most every REPORT_INTERVAL_MS.
   * Cheap enough to call per chunk; never fails the call it accounts for.
   */
  portTraffic(sandbox: SandboxObject): void {
    const uid = sandbox.metadata.uid ?? "";
    const now = Date.now();
    if (now - (this.reported.get(uid) ?? 0) < REPORT_INTERVAL_MS) return;
    this.reported.set(uid, now);
    if (this.reported.size > 10_000) this.reported.clear(); // bounded: at worst a few extra reports
    let reach: Reach;
    try {
      reach = this.o.directory.reach(sandbox);
    } catch {
      return;
    }
    reach.agent(sandbox).then(
      (ep) => {
        const req = http.request({
          agent: this.reportAgent,
          host: ep.host,
          port: ep.port,
          method: "POST",
          path: "/v1/activity",
          headers: { authorization: `Bearer ${ep.token}`, "content-length": "0" },
          timeout: 5000,
        });
        req.on("response", (res) => res.resume());
        req.on("timeout", () => req.destroy());
        req.on("error", (err) =>
          this.o.log.debug(
            { sandbox: sandbox.metadata.name, err: err.message },
            "activity report failed",
          ),
        );
        req.end();
      },
      // The pod backend's agent is not reachable from the gateway (loopback only): see docs/idle.md.
      () => {},
    );
  }

  close(): void {
    this.reportAgent.destroy();
  }
}
