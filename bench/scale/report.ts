// The figures as a table on stdout, and as JSON plus a short markdown summary
// (machine, versions and configuration beside the figures) in the results dir.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { FloorResult, LatencyResult, OperatorResult } from "./phases.js";

export const GOALS = {
  floorRatio: 0.8,
  rssMiBAt10k: 200,
  idleWritesPerMinute: 0,
};

export interface Results {
  date: string;
  machine: Record<string, string | number>;
  versions: Record<string, string>;
  configuration: Record<string, unknown>;
  idle: { rssMiB: number; heapUsedMiB: number };
  latency?: LatencyResult;
  runs: { sandboxes: number; floor?: FloorResult; operator: OperatorResult; ratio?: number }[];
}

const row = (cells: (string | number | undefined)[]) =>
  `| ${cells.map((c) => (c === undefined ? "-" : String(c))).join(" | ")} |`;

export function tables(r: Results): string {
  const lines: string[] = [];
  lines.push(
    row([
      "N",
      "floor created/s",
      "floor Running/s",
      "operator Running/s",
      "ratio",
      "accepted s",
      "Running s",
      "cleanup s (floor)",
      "controller CPU s",
      "controller CPU ms per sandbox (lifecycle)",
    ]),
    row(Array(10).fill("---")),
  );
  for (const { sandboxes, floor, operator: o, ratio } of r.runs) {
    lines.push(
      row([
        sandboxes,
        floor?.createdPerSecond,
        floor?.runningPerSecond,
        o.runningPerSecond,
        ratio,
        o.acceptedSeconds,
        o.runningSeconds,
        `${o.cleanupSeconds}${floor ? ` (${floor.cleanupSeconds})` : ""}`,
        o.controllerCpuSeconds,
        o.controllerCpuMsPerSandbox,
      ]),
    );
  }
  lines.push("", row(["sandboxes", "RSS MiB", "peak RSS MiB", "heap used MiB", "heap total MiB"]));
  lines.push(row(Array(5).fill("---")));
  lines.push(row([0, r.idle.rssMiB, "-", r.idle.heapUsedMiB, "-"]));
  for (const { sandboxes, operator: o } of r.runs) {
    const m = o.memory;
    lines.push(row([sandboxes, m.rssMiB, m.peakRssMiB, m.heapUsedMiB, m.heapTotalMiB]));
  }
  if (r.latency) {
    const l = r.latency;
    lines.push(
      "",
      row([
        `latency at ${l.achievedPerSecond}/s (${l.sandboxes} sandboxes)`,
        "p50 ms",
        "p90 ms",
        "p99 ms",
      ]),
      row(Array(4).fill("---")),
      row(["apply -> Pod created", l.applyToPodMs.p50, l.applyToPodMs.p90, l.applyToPodMs.p99]),
      row(["apply -> Ready", l.applyToReadyMs.p50, l.applyToReadyMs.p90, l.applyToReadyMs.p99]),
    );
  }
  const first = r.runs[0];
  if (first) {
    lines.push(
      "",
      `API requests per sandbox lifecycle (N=${first.sandboxes}, create -> Running -> delete):`,
      "",
    );
    lines.push(row(["who", "verb", "per sandbox"]), row(["---", "---", "---"]));
    for (const [who, verbs] of Object.entries(first.operator.apiCost.byActorVerb))
      for (const [verb, n] of Object.entries(verbs)) lines.push(row([who, verb, n]));
    lines.push(row(["all", "", first.operator.apiCost.totalPerSandbox]));
    const work = first.operator.work;
    if (work) {
      lines.push("", "Controller work per sandbox lifecycle (its own counters):", "");
      lines.push(row(["counter", "per sandbox"]), row(["---", "---"]));
      for (const [k, n] of Object.entries(work)) lines.push(row([k, n]));
    }
    const idle = r.runs.find((x) => x.operator.idle)?.operator.idle;
    if (idle) {
      lines.push(
        "",
        `Controller writes per minute across ${first.sandboxes} idle Running sandboxes (${idle.seconds} s): ${idle.writesPerMinute}`,
      );
    }
  }
  return lines.join("\n");
}

export function markdown(r: Results): string {
  const kv = (o: Record<string, unknown>) =>
    Object.entries(o)
      .map(([k, v]) => `- ${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`)
      .join("\n");
  const largest = r.runs.at(-1);
  return `# Scale benchmark, ${r.date}

Goals (targets, not pass/fail): operator/floor ratio >= ${GOALS.floorRatio}, controller RSS <= ${GOALS.rssMiBAt10k} MiB at 10k sandboxes, ${GOALS.idleWritesPerMinute} writes/min across idle sandboxes.
${largest ? `Largest run: ${largest.sandboxes} sandboxes, controller RSS ${largest.operator.memory.rssMiB} MiB.` : ""}

${tables(r)}

## Machine
${kv(r.machine)}

## Versions
${kv(r.versions)}

## Configuration
${kv(r.configuration)}
`;
}

export function writeResults(dir: string, r: Results): { json: string; md: string } {
  mkdirSync(dir, { recursive: true });
  const stem = r.date.slice(0, 19).replace(/:/g, "-");
  const json = join(dir, `${stem}.json`);
  const md = join(dir, `${stem}.md`);
  writeFileSync(json, `${JSON.stringify(r, null, 2)}\n`);
  writeFileSync(md, markdown(r));
  return { json, md };
}
