// Beyond one core: the operator's ceiling with 1, 2, 3... sharded replicas
// (`--shards`), each a process of its own, on the same control plane and kwok
// node as bench/scale. The controllers run at a lower CPU priority (nice 10)
// so the apiserver, which all of them share, is not what they compete with.
//
// On a 2-core machine the apiserver bounds the wall-clock rate whatever the
// controller does, so the controllers' own ceiling is measured from their CPU
// time: from the first create until every Sandbox runs, the busiest replica
// spent X CPU-seconds on its share of the N sandboxes; one core lets it do that
// share in X seconds, so the set could run N sandboxes in X seconds: a ceiling
// of N / X creates/s. With one replica that is N over all of the controller's
// CPU; with R evenly loaded replicas it approaches R times that.
//
//   npm run build && npx tsx bench/scale/replicas.ts --replicas 1,2,3 --sandboxes 600
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { rawRequest } from "../../src/controller/raw-request.js";
import { unlimited } from "../../src/kube/config.js";
import { createLogger } from "../../src/observability/logger.js";
import { startControlPlane } from "../../test/support/control-plane.js";
import { REPO_ROOT } from "../../test/support/paths.js";
import { IDENTITIES } from "./api-cost.js";
import { type ControllerProcess, startController } from "./controller-process.js";
import { Clients } from "./objects.js";
import { type Bench, throughput } from "./phases.js";
import { Tracker } from "./tracker.js";

const { values: args } = parseArgs({
  options: {
    replicas: { type: "string", default: "1,2,3" },
    sandboxes: { type: "string", default: "600" },
    shards: { type: "string", default: "16" },
    /** Each replica's CPU at rest (shards held, no sandboxes) is measured over this window. */
    "idle-seconds": { type: "string", default: "20" },
    /** Run each replica count this many times, alternating (the machine is shared). */
    rounds: { type: "string", default: "1" },
    out: { type: "string", default: join(REPO_ROOT, "bench/results/scale") },
  },
});
const replicaCounts = args.replicas!.split(",").map(Number);
const n = Number(args.sandboxes);
const shards = Number(args.shards);
const log = (line: string) => process.stderr.write(`[bench:replicas] ${line}\n`);

const cp = await startControlPlane({
  controllerManager: true,
  scheduler: true,
  kwok: true,
  crds: true,
  scale: { pods: n * 2 + 100 },
  auditAllVerbs: true,
});
const asUser = (user: string) => {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(join(cp.dir, `${user}.kubeconfig`));
  return unlimited(kc);
};
const namespace = "bench";
const admin = unlimited(cp.kubeConfig());
await admin
  .makeApiClient(k8s.CoreV1Api)
  .createNamespace({ body: { metadata: { name: namespace } } });
const tracker = new Tracker(
  asUser(IDENTITIES.observer),
  [namespace],
  createLogger({ level: "warn" }),
);
await tracker.start();

/** R controllers as one: CPU summed, each sample of it kept per replica. */
function group(members: ControllerProcess[]) {
  const samples: number[][] = [];
  const proc: ControllerProcess = {
    pid: members[0]!.pid,
    args: members[0]!.args,
    nodeFlags: members[0]!.nodeFlags,
    memory: () => members[0]!.memory(),
    async cpuSeconds() {
      const each = await Promise.all(members.map((m) => m.cpuSeconds()));
      samples.push(each);
      return each.reduce((a, b) => a + b, 0);
    },
    stop: async () => {
      await Promise.all(members.map((m) => m.stop()));
    },
  };
  return { proc, samples };
}

/** Until R replicas hold all shards between them, each some. */
async function spread(leaseId: string, r: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const leases = await rawRequest<{
      items: { metadata: { name: string }; spec?: { holderIdentity?: string } }[];
    }>(admin, "GET", `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`, {
      query: { labelSelector: `sandboxing.dev/lease-group=${leaseId}` },
    });
    const held = leases.items.filter(
      (l) => l.metadata.name.includes("-shard-") && l.spec?.holderIdentity,
    );
    if (held.length === shards && new Set(held.map((l) => l.spec?.holderIdentity)).size === r)
      return;
    if (Date.now() > deadline) throw new Error(`shards did not spread over ${r} replicas`);
    await new Promise((res) => setTimeout(res, 500));
  }
}

interface Row {
  replicas: number;
  round: number;
  runningPerSecond: number;
  cpuMsPerSandbox: number;
  /** CPU seconds per replica from the first create until every Sandbox ran. */
  createCpuSeconds: number[];
  ceilingCreatesPerSecond: number;
  /** Per replica: CPU seconds per second at rest (Lease renewals, watches, metrics), shards held. */
  idleCpuPerSecond: number[];
  /** createCpuSeconds less what each replica spends at rest over as long: the CPU the sandboxes cost. */
  workCpuSeconds: number[];
  /** N / the busiest replica's work CPU: the ceiling once the run is short enough for rest costs not to count. */
  workCeilingCreatesPerSecond: number;
  loadAverage: string;
}
const rows: Row[] = [];
try {
  for (let round = 0; round < Number(args.rounds); round++) {
    for (const r of replicaCounts) {
      const leaseId = `sbx-r${r}-${round}`;
      const members: ControllerProcess[] = [];
      for (let i = 0; i < r; i++) {
        members.push(
          await startController({
            kubeconfig: join(cp.dir, `${IDENTITIES.controller}.kubeconfig`),
            namespace,
            logDir: cp.dir,
            flags: [`--shards=${shards}`, `--leader-election-id=${leaseId}`],
          }),
        );
        // The apiserver, shared by all, comes first.
        execFileSync("renice", ["-n", "10", "-p", String(members[i]!.pid)]);
      }
      await spread(leaseId, r);
      // At rest, shards held: what each replica costs per second whatever the load.
      const idleSeconds = Number(args["idle-seconds"]);
      const idleFrom = await Promise.all(members.map((m) => m.cpuSeconds()));
      await new Promise((res) => setTimeout(res, idleSeconds * 1000));
      const idleTo = await Promise.all(members.map((m) => m.cpuSeconds()));
      const idleRate = idleTo.map((c, i) => (c - idleFrom[i]!) / idleSeconds);
      const g = group(members);
      const bench: Bench = {
        clients: new Clients(asUser(IDENTITIES.client)),
        tracker,
        controller: g.proc,
        auditLogPath: cp.auditLogPath,
        namespace,
        floorNamespace: namespace,
        width: 32,
        timeoutMs: Math.max(300_000, n * 1500),
        log,
      };
      const result = await throughput(bench, n, { settleMs: 2000 });
      await g.proc.stop();
      const [before, running] = g.samples;
      const createCpu = before!.map((b, i) => Number((running![i]! - b).toFixed(2)));
      const busiest = Math.max(...createCpu);
      const work = createCpu.map((c, i) =>
        Number((c - idleRate[i]! * result.runningSeconds).toFixed(2)),
      );
      const row: Row = {
        replicas: r,
        round,
        runningPerSecond: result.runningPerSecond,
        cpuMsPerSandbox: result.controllerCpuMsPerSandbox,
        createCpuSeconds: createCpu,
        ceilingCreatesPerSecond: Number((n / busiest).toFixed(1)),
        idleCpuPerSecond: idleRate.map((x) => Number(x.toFixed(4))),
        workCpuSeconds: work,
        workCeilingCreatesPerSecond: Number((n / Math.max(...work)).toFixed(1)),
        loadAverage: loadavg()
          .map((x) => x.toFixed(1))
          .join(" "),
      };
      log(JSON.stringify(row));
      rows.push(row);
    }
  }
  const lines = [
    `Sharded replicas (${shards} shards), ${n} sandboxes each run, ${cpus().length} cores; controllers at nice 10.`,
    "",
    "| replicas | round | Running/s (wall) | controller CPU ms per sandbox (all replicas, lifecycle) | create -> Running CPU s per replica | ceiling creates/s (N / busiest replica's CPU s) | CPU s/s per replica at rest | work CPU s per replica (less rest) | work ceiling creates/s | load average |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ...rows.map(
      (r) =>
        `| ${r.replicas} | ${r.round} | ${r.runningPerSecond} | ${r.cpuMsPerSandbox} | ${r.createCpuSeconds.join(", ")} | ${r.ceilingCreatesPerSecond} | ${r.idleCpuPerSecond.join(", ")} | ${r.workCpuSeconds.join(", ")} | ${r.workCeilingCreatesPerSecond} | ${r.loadAverage} |`,
    ),
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
  const file = join(args.out!, `replicas-${new Date().toISOString().replace(/[:.]/g, "-")}.md`);
  writeFileSync(file, `${lines.join("\n")}\n`);
  log(`wrote ${file}`);
} finally {
  await tracker.stop();
  await cp.stop();
}
process.exit(0);
