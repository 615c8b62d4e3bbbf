// Idle memory of the controller process (no sandboxes) under several sets of
// Node flags, each started twice against one control plane: RSS and its parts
// from /proc (RssAnon: heap and malloc; RssFile: the node binary's and other
// mapped files' pages), V8's heap from /metrics, and the CPU the start-up and
// the idle seconds cost.
//
//   npx tsx bench/scale/idle-memory.ts [--seconds 8] [--variants "A;B"]
//     (each variant a space-separated node flag list; "chart" stands for the chart's V8 flags).
// Not a variant: --lite-mode (and --jitless) turn WebAssembly off, and undici parses
// HTTP with llhttp compiled to WebAssembly: the controller does not start.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startControlPlane } from "../../test/support/control-plane.js";
import { IDENTITIES } from "./api-cost.js";
import { chartNodeFlags, startController } from "./controller-process.js";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "8" },
    runs: { type: "string", default: "2" },
    /** Also write a heap snapshot of each run here (SIGUSR2 after the wait). */
    "snapshot-dir": { type: "string" },
    variants: {
      type: "string",
      default: ["--max-old-space-size=384", "chart", "chart --v8-pool-size=1"].join(";"),
    },
  },
});

const cp = await startControlPlane({ crds: true });
const namespace = "bench";
await cp
  .kubeConfig()
  .makeApiClient((await import("@kubernetes/client-node")).CoreV1Api)
  .createNamespace({ body: { metadata: { name: namespace } } });
// "chart": the chart's V8 flags (heap cap, young generation).
const chart = chartNodeFlags().join(" ");

const kb = (status: string, field: string) =>
  Math.round(Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? Number.NaN) / 102.4) /
  10;
const rows: string[] = [
  "| node flags | RSS MiB | RssAnon MiB | RssFile MiB | heap used / total MiB | CPU s (start + idle) |",
  "| --- | --- | --- | --- | --- | --- |",
];
try {
  for (const variant of args.variants!.split(";")) {
    const flags = variant.replace("chart", chart).split(" ").filter(Boolean);
    const snapshots = args["snapshot-dir"];
    if (snapshots) flags.push("--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${snapshots}`);
    for (let i = 0; i < Number(args.runs); i++) {
      process.env.BENCH_CONTROLLER_NODE_FLAGS = flags.join(" ");
      const c = await startController({
        kubeconfig: join(cp.dir, `${IDENTITIES.controller}.kubeconfig`),
        namespace,
        logDir: cp.dir,
        flags: [],
      });
      await new Promise((r) => setTimeout(r, Number(args.seconds) * 1000));
      const status = readFileSync(`/proc/${c.pid}/status`, "utf8");
      const m = await c.memory();
      const cpu = await c.cpuSeconds();
      if (snapshots) {
        const before = new Set(readdirSync(snapshots));
        process.kill(c.pid, "SIGUSR2");
        // Written synchronously by the process: done once its size stops growing.
        let last = -1;
        for (let t = 0; t < 600; t++) {
          await new Promise((r) => setTimeout(r, 500));
          const file = readdirSync(snapshots).find((f) => !before.has(f));
          const size = file ? statSync(join(snapshots, file)).size : 0;
          if (size > 0 && size === last) break;
          last = size;
        }
      }
      rows.push(
        `| \`${flags.join(" ")}\` | ${kb(status, "VmRSS")} | ${kb(status, "RssAnon")} | ${kb(status, "RssFile")} | ${m.heapUsedMiB} / ${m.heapTotalMiB} | ${cpu} |`,
      );
      process.stderr.write(`${rows.at(-1)}\n`);
      await c.stop();
    }
  }
} finally {
  await cp.stop();
}
console.log(rows.join("\n"));
