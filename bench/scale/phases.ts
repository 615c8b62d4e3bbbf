// The measurements, each starting and ending with empty namespaces.
import { setTimeout as sleep } from "node:timers/promises";
import { auditOffset } from "../../test/support/audit-log.js";
import { type Cost, controllerWrites, lifecycleCost } from "./api-cost.js";
import type { ControllerProcess, MemorySample } from "./controller-process.js";
import { type Clients, pool, sandboxName } from "./objects.js";
import type { Tracker } from "./tracker.js";

export interface Bench {
  clients: Clients;
  tracker: Tracker;
  controller: ControllerProcess;
  auditLogPath: string;
  /** Namespace the operator watches, and the floor's (which it does not). */
  namespace: string;
  floorNamespace: string;
  /** Requests the client keeps in flight when creating or deleting "as fast as accepted". */
  width: number;
  /** How long any one wait may take before the run fails. */
  timeoutMs: number;
  log(line: string): void;
}

const seconds = (since: number) => Number(((performance.now() - since) / 1000).toFixed(2));
const rate = (n: number, s: number) => Number((n / s).toFixed(1));

export interface FloorResult {
  createSeconds: number;
  createdPerSecond: number;
  runningSeconds: number;
  runningPerSecond: number;
  cleanupSeconds: number;
}

/** Bare Pods + NetworkPolicies from a client loop: what this apiserver allows without us. */
export async function floor(b: Bench, n: number): Promise<FloorResult> {
  const ns = b.floorNamespace;
  const names = Array.from({ length: n }, (_, i) => sandboxName(`f${n}`, i));
  const start = performance.now();
  await pool(names, b.width, (name) => b.clients.createFloor(ns, name));
  const createSeconds = seconds(start);
  await b.tracker.until(
    () => b.tracker.pods.countUp(ns) >= n,
    () => `${n} floor pods Running (${b.tracker.pods.countUp(ns)})`,
    b.timeoutMs,
  );
  const runningSeconds = seconds(start);
  b.log(`floor ${n}: created in ${createSeconds} s, Running in ${runningSeconds} s`);
  const del = performance.now();
  await pool(names, b.width, (name) => b.clients.deleteFloor(ns, name));
  await b.tracker.until(
    () => b.tracker.pods.count(ns) === 0 && b.tracker.networkPolicies.count(ns) === 0,
    () => `floor cleanup (${b.tracker.pods.count(ns)} pods left)`,
    b.timeoutMs,
  );
  return {
    createSeconds,
    createdPerSecond: rate(n, createSeconds),
    runningSeconds,
    runningPerSecond: rate(n, runningSeconds),
    cleanupSeconds: seconds(del),
  };
}

export interface OperatorResult {
  /** Until the apiserver had accepted every Sandbox. */
  acceptedSeconds: number;
  /** Until every Sandbox has its Pod and NetworkPolicy and reports Running. */
  runningSeconds: number;
  runningPerSecond: number;
  cleanupSeconds: number;
  /** Controller CPU from the first create until every Sandbox ran. */
  controllerCpuSeconds: number;
  /**
   * Controller CPU of the whole lifecycle (create -> Running, then delete ->
   * gone; the settle and idle windows between are left out), per sandbox.
   */
  controllerCpuMsPerSandbox: number;
  memory: MemorySample;
  apiCost: Cost;
  /**
   * The controller's own counters over the same windows as the CPU figure, per
   * sandbox: watch events received / enqueued by source, reconciles, status writes.
   */
  work?: Record<string, number>;
  /** Controller writes per minute while every sandbox sat Running (when measured). */
  idle?: { seconds: number; writesPerMinute: number; writes: string[] };
}

export async function throughput(
  b: Bench,
  n: number,
  opts: { settleMs: number; idleSeconds?: number },
): Promise<OperatorResult> {
  const ns = b.namespace;
  const t = b.tracker;
  const names = Array.from({ length: n }, (_, i) => sandboxName(`s${n}`, i));
  const auditFrom = auditOffset(b.auditLogPath);
  const cpuBefore = await b.controller.cpuSeconds();
  const workBefore = await b.controller.counters?.();
  const start = performance.now();
  await pool(names, b.width, (name) => b.clients.createSandbox(ns, name));
  const acceptedSeconds = seconds(start);
  await t.until(
    () => t.sandboxes.countUp(ns) >= n && t.pods.count(ns) >= n && t.networkPolicies.count(ns) >= n,
    () =>
      `${n} sandboxes Running (${t.sandboxes.countUp(ns)} Running, ${t.pods.count(ns)} pods, ${t.networkPolicies.count(ns)} policies)`,
    b.timeoutMs,
  );
  const runningSeconds = seconds(start);
  const controllerCpuSeconds = Number(((await b.controller.cpuSeconds()) - cpuBefore).toFixed(2));
  const workAtRunning = await b.controller.counters?.();
  b.log(`operator ${n}: accepted in ${acceptedSeconds} s, Running in ${runningSeconds} s`);

  await sleep(opts.settleMs);
  const memory = await b.controller.memory();
  b.log(`memory at ${n}: ${JSON.stringify(memory)}`);
  let idle: OperatorResult["idle"];
  if (opts.idleSeconds) {
    const from = auditOffset(b.auditLogPath);
    await sleep(opts.idleSeconds * 1000);
    const w = await controllerWrites(b.auditLogPath, from);
    idle = {
      seconds: opts.idleSeconds,
      writesPerMinute: Number(((w.count * 60) / opts.idleSeconds).toFixed(2)),
      writes: w.what,
    };
    b.log(`idle ${n} for ${opts.idleSeconds} s: ${w.count} controller writes`);
  }

  const cpuAtDelete = await b.controller.cpuSeconds();
  const workAtDelete = await b.controller.counters?.();
  const del = performance.now();
  await pool(names, b.width, (name) => b.clients.deleteSandbox(ns, name));
  await t.until(
    () =>
      t.sandboxes.count(ns) === 0 && t.pods.count(ns) === 0 && t.networkPolicies.count(ns) === 0,
    () =>
      `cleanup (${t.sandboxes.count(ns)} sandboxes, ${t.pods.count(ns)} pods, ${t.networkPolicies.count(ns)} policies left)`,
    b.timeoutMs,
  );
  const cleanupSeconds = seconds(del);
  const cleanupCpuSeconds = (await b.controller.cpuSeconds()) - cpuAtDelete;
  const workAfter = await b.controller.counters?.();
  const work =
    workBefore && workAtRunning && workAtDelete && workAfter
      ? perSandbox([workBefore, workAtRunning], [workAtDelete, workAfter], n)
      : undefined;
  if (work) b.log(`operator ${n}: work per sandbox ${JSON.stringify(work)}`);
  const controllerCpuMsPerSandbox = Number(
    (((controllerCpuSeconds + cleanupCpuSeconds) * 1000) / n).toFixed(2),
  );
  b.log(
    `operator ${n}: cleaned up in ${cleanupSeconds} s; controller CPU ${controllerCpuMsPerSandbox} ms per sandbox`,
  );
  return {
    acceptedSeconds,
    runningSeconds,
    runningPerSecond: rate(n, runningSeconds),
    cleanupSeconds,
    controllerCpuSeconds,
    controllerCpuMsPerSandbox,
    memory,
    apiCost: await lifecycleCost(b.auditLogPath, auditFrom, n),
    work,
    idle,
  };
}

/** Counter increases summed over windows [from, to], per sandbox, zeros left out. */
type Counters = Map<string, number>;
function perSandbox(
  a: [Counters, Counters],
  b: [Counters, Counters],
  n: number,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [from, to] of [a, b]) {
    for (const [k, v] of to) out[k] = (out[k] ?? 0) + v - (from.get(k) ?? 0);
  }
  return Object.fromEntries(
    Object.entries(out)
      .filter(([, v]) => v > 0)
      .sort()
      .map(([k, v]) => [k.replace(/^sandbox_operator_/, ""), Number((v / n).toFixed(3))]),
  );
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
}

export interface LatencyResult {
  sandboxes: number;
  targetPerSecond: number;
  achievedPerSecond: number;
  applyToPodMs: Percentiles;
  applyToReadyMs: Percentiles;
}

/** Creates at a steady rate, each timed from its request to its Pod and its Ready, as watched. */
export async function latency(
  b: Bench,
  perSecond: number,
  durationSeconds: number,
): Promise<LatencyResult> {
  const ns = b.namespace;
  const t = b.tracker;
  const n = Math.max(1, Math.round(perSecond * durationSeconds));
  const names = Array.from({ length: n }, (_, i) => sandboxName("lat", i));
  const appliedAt = new Map<string, number>();
  const requests: Promise<unknown>[] = [];
  const start = performance.now();
  for (const [i, name] of names.entries()) {
    const due = start + (i * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    appliedAt.set(name, performance.now());
    requests.push(b.clients.createSandbox(ns, name));
  }
  await Promise.all(requests);
  const achievedPerSecond = rate(n, seconds(start));
  await t.until(
    () => t.ready.countUp(ns) >= n && t.pods.count(ns) >= n,
    () => `${n} sandboxes Ready (${t.ready.countUp(ns)})`,
    b.timeoutMs,
  );
  const since = (at: Map<string, number>) =>
    names.map((name) => at.get(`${ns}/${name}`)! - appliedAt.get(name)!);
  const result = {
    sandboxes: n,
    targetPerSecond: perSecond,
    achievedPerSecond,
    applyToPodMs: percentiles(since(t.pods.createdAt)),
    applyToReadyMs: percentiles(since(t.ready.upAt)),
  };
  b.log(`latency at ${perSecond}/s: ${JSON.stringify(result)}`);
  await pool(names, b.width, (name) => b.clients.deleteSandbox(ns, name));
  await t.until(
    () => t.sandboxes.count(ns) === 0 && t.pods.count(ns) === 0,
    () => `latency cleanup (${t.sandboxes.count(ns)} left)`,
    b.timeoutMs,
  );
  return result;
}

export function percentiles(xs: number[]): Percentiles {
  const s = [...xs].sort((a, b) => a - b);
  const at = (p: number) =>
    Number(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!.toFixed(1));
  return { p50: at(50), p90: at(90), p99: at(99) };
}
