// The scale benchmark at smoke size (N=50, a few seconds of each phase), so
// the harness cannot rot: it must run end to end against its own control
// plane and report figures that make sense. The figures are not judged here.
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, expect, it } from "vitest";
import type { Results } from "../../bench/scale/report.js";
import { REPO_ROOT } from "../support/paths.js";

const out = mkdtempSync(join(tmpdir(), "bench-scale-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

it("runs the scale benchmark at smoke size and writes sane results", {
  timeout: 150_000,
}, async () => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--import", "tsx", join(REPO_ROOT, "bench/scale/run.ts"), "--smoke", `--out=${out}`],
    { cwd: REPO_ROOT, maxBuffer: 16 * 1024 * 1024 },
  );
  expect(stdout).toContain("operator Running/s");
  const files = readdirSync(out);
  expect(files.filter((f) => f.endsWith(".md"))).toHaveLength(1);
  const json = files.find((f) => f.endsWith(".json"));
  const r = JSON.parse(readFileSync(join(out, json!), "utf8")) as Results;

  const [run] = r.runs;
  expect(run?.sandboxes).toBe(50);
  expect(run!.floor!.runningPerSecond).toBeGreaterThan(0);
  expect(run!.operator.runningPerSecond).toBeGreaterThan(0);
  expect(run!.ratio).toBeGreaterThan(0);
  expect(run!.operator.cleanupSeconds).toBeGreaterThan(0);
  expect(run!.operator.memory.rssMiB).toBeGreaterThan(r.idle.heapUsedMiB / 2);
  expect(run!.operator.memory.heapUsedMiB).toBeGreaterThan(0);
  expect(r.latency!.applyToReadyMs.p50).toBeGreaterThanOrEqual(r.latency!.applyToPodMs.p50);
  // Every lifecycle: the client creates and deletes its Sandbox; the controller creates the Pod.
  expect(run!.operator.apiCost.byActorVerb.client).toMatchObject({ create: 1, delete: 1 });
  expect(run!.operator.apiCost.byActorVerb.controller?.create).toBeGreaterThanOrEqual(2);
  expect(run!.operator.idle?.writesPerMinute).toBeGreaterThanOrEqual(0);
});
