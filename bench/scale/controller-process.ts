// The operator as users run it: `sandbox-operator controller` (the built CLI)
// in a process of its own, so its memory is its own. RSS comes from /proc;
// heap and CPU from its /metrics (prom-client's default process metrics).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { REPO_ROOT } from "../../test/support/paths.js";
import {
  freePort,
  type Started,
  startProcess,
  tail,
  waitForHttpOk,
} from "../../test/support/processes.js";
import { EGRESS_IMAGE } from "./objects.js";

/** BENCH_CONTROLLER_MAIN runs another build (e.g. a saved copy of main's) for before/after runs. */
const MAIN = process.env.BENCH_CONTROLLER_MAIN ?? join(REPO_ROOT, "dist/cli/main.js");
const MiB = 1024 * 1024;

export interface MemorySample {
  rssMiB: number;
  /** Peak RSS of the process so far (VmHWM). */
  peakRssMiB: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
}

export interface ControllerProcess {
  pid: number;
  args: string[];
  nodeFlags: string[];
  memory(): Promise<MemorySample>;
  cpuSeconds(): Promise<number>;
  /**
   * The controller's work counters (watch events received and enqueued by
   * source, reconciles by result, status writes), "name{labels}" -> value.
   */
  counters?(): Promise<Map<string, number>>;
  stop(): Promise<void>;
}

export async function startController(opts: {
  kubeconfig: string;
  namespace: string;
  logDir: string;
  /** Extra flags, e.g. --kube-api-qps=100; later flags win. */
  flags: string[];
}): Promise<ControllerProcess> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` first`);
  const [metrics, health] = [await freePort(), await freePort()];
  const args = [
    `--kubeconfig=${opts.kubeconfig}`,
    `--namespaces=${opts.namespace}`,
    `--leader-election-namespace=${opts.namespace}`,
    `--egress-image=${EGRESS_IMAGE}`,
    `--metrics-bind-address=127.0.0.1:${metrics}`,
    `--health-probe-bind-address=127.0.0.1:${health}`,
    "--log-level=warn",
    ...opts.flags,
  ];
  const nodeFlags =
    process.env.BENCH_CONTROLLER_NODE_FLAGS?.split(" ").filter(Boolean) ?? chartNodeFlags();
  const proc: Started = startProcess(
    "controller",
    process.execPath,
    [...nodeFlags, MAIN, "controller", ...args],
    opts.logDir,
  );
  const pid = proc.child.pid!;
  await waitForHttpOk(proc.child, `http://127.0.0.1:${health}/readyz`, 60_000, () =>
    tail(proc.logPath),
  );

  const scrape = async () =>
    parseMetrics(await (await fetch(`http://127.0.0.1:${metrics}/metrics`)).text());
  return {
    pid,
    args,
    nodeFlags,
    async memory() {
      const m = await scrape();
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]);
      return {
        rssMiB: round((kb("VmRSS") * 1024) / MiB),
        peakRssMiB: round((kb("VmHWM") * 1024) / MiB),
        heapUsedMiB: round((m.get("nodejs_heap_size_used_bytes") ?? Number.NaN) / MiB),
        heapTotalMiB: round((m.get("nodejs_heap_size_total_bytes") ?? Number.NaN) / MiB),
      };
    },
    async cpuSeconds() {
      return round((await scrape()).get("process_cpu_seconds_total") ?? Number.NaN, 2);
    },
    async counters() {
      const text = await (await fetch(`http://127.0.0.1:${metrics}/metrics`)).text();
      const out = new Map<string, number>();
      for (const line of text.split("\n")) {
        const m =
          /^(sandbox_operator_(?:watch_events|reconcile|status_writes)_total)(\{[^}]*\})? (\S+)$/.exec(
            line,
          );
        if (m) out.set(`${m[1]}${m[2] ?? ""}`, Number(m[3]));
      }
      return out;
    },
    stop: () => proc.stop(),
  };
}

/** Unlabelled samples of a Prometheus text exposition. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*) (\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

const round = (n: number, d = 1) => Number(n.toFixed(d));

/** The V8 flags the chart deploys the controller with (NODE_OPTIONS), so memory is measured as it ships. */
export function chartNodeFlags(): string[] {
  const values = parseYaml(
    readFileSync(join(REPO_ROOT, "charts/sandbox-operator/values.yaml"), "utf8"),
  ) as { heapLimitMiB: number; semiSpaceMiB?: number };
  return [
    `--max-old-space-size=${values.heapLimitMiB}`,
    ...(values.semiSpaceMiB ? [`--max-semi-space-size=${values.semiSpaceMiB}`] : []),
  ];
}
