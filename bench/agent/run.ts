// Data-plane benchmark (figures, not a timed test). In one run, on one
// container prepared exactly as the docker backend prepares a workload (agent
// delivered into /.sandbox, started beside the entrypoint; hardened, read-only
// root, UID 1000, shell-less FROM-scratch image):
//   - exec round trip of a trivial program through the SDK's client vs
//     `docker exec` (CLI) and the Engine API (create + start + inspect), p50/p99;
//   - the agent alone on loopback (no container): exec `true` p50/p99, ready time;
//   - file write/read throughput through the agent (256 MiB each way);
//   - agent RSS idle and its high-water mark under 100 concurrent execs.
// Prints a table, writes bench/results/agent.json.
//
//   flock /tmp/sbx-docker.lock npm run bench:agent [-- --execs 500]
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { parseArgs, promisify } from "node:util";
import { AgentInjector } from "../../src/backends/docker/agent.js";
import { AgentClient } from "../../src/dataplane/client.js";
import { AGENT_TOKEN_ENV } from "../../src/dataplane/protocol.js";
import {
  buildAgent,
  buildScratchImage,
  SCRATCH_IMAGE,
  startInjectedContainer,
  startLocalAgent,
} from "../../test/support/agent.js";
import { docker, ensureDockerd } from "../../test/support/docker.js";
import { REPO_ROOT } from "../../test/support/paths.js";
import { percentile, timeIt } from "../support/stats.js";

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    execs: { type: "string", default: "500" },
    "docker-execs": { type: "string", default: "50" },
  },
});
const N = Number(values.execs);
const ND = Number(values["docker-execs"]);

const pct = (samples: number[], p: number) => Number(percentile(samples, p).toFixed(2));

function statusKiB(pid: number, key: string): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${key}:`));
  return Number(line?.split(/\s+/)[1]);
}

async function agentHostPid(containerId: string): Promise<number> {
  const { stdout } = await run("docker", ["top", containerId, "-eo", "pid,args"]);
  const line = stdout.split("\n").find((l) => l.includes("/.sandbox/sandbox-agent"));
  if (!line) throw new Error("agent process not found in the container");
  return Number(line.trim().split(/\s+/)[0]);
}

const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  execs: N,
  dockerExecs: ND,
};

// --- the agent alone -----------------------------------------------------------
buildAgent();
{
  // Ready: spawn to first /healthz answer, best of 10.
  const readies: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t = performance.now();
    const port = 20000 + Math.floor(Math.random() * 20000);
    const p = spawn(
      join(REPO_ROOT, "dist/agent/sandbox-agent"),
      ["--listen", `127.0.0.1:${port}`],
      {
        env: { [AGENT_TOKEN_ENV]: "x".repeat(32) },
        stdio: "ignore",
      },
    );
    const c = new AgentClient({ host: "127.0.0.1", port, token: "x".repeat(32) });
    while (!(await c.healthy())) await new Promise((r) => setImmediate(r));
    readies.push(performance.now() - t);
    c.close();
    p.kill();
  }
  const local = await startLocalAgent(tmpdir());
  const idleAtStart = statusKiB(local.proc.pid!, "VmRSS");
  const samples = await timeIt(N, () => local.client.exec(["true"]));
  results.local = {
    readyMsBestOf10: pct(readies, 0),
    readyMsP50: pct(readies, 50),
    execTrueP50Ms: pct(samples, 50),
    execTrueP99Ms: pct(samples, 99),
    idleRssKiBAtStart: idleAtStart,
    rssKiBAfterExecs: statusKiB(local.proc.pid!, "VmRSS"),
  };
  await local.stop();
}

// --- in a container ---------------------------------------------------------------
const engine = await ensureDockerd();
buildScratchImage();
const injector = new AgentInjector(engine, buildAgent());
const name = `sbx-bench-agent-${process.pid}`;
const c = await startInjectedContainer(engine, injector, name, SCRATCH_IMAGE);
try {
  const pid = await agentHostPid(c.id);
  await new Promise((r) => setTimeout(r, 1000));
  const idleAtStart = statusKiB(pid, "VmRSS");
  const argv = ["/workload", "echo"];
  const sdk = await timeIt(N, () => c.client.exec(argv));
  const cli = await timeIt(ND, () => run("docker", ["exec", name, ...argv]), 2);
  const container = engine.getContainer(c.id);
  const api = await timeIt(
    ND,
    async () => {
      const e = await container.exec({ Cmd: argv, AttachStdout: true, AttachStderr: true });
      const stream = await e.start({ hijack: true, stdin: false });
      stream.resume();
      await new Promise((r) => stream.on("end", r));
      await e.inspect();
    },
    2,
  );
  results.exec = {
    sdk: { p50: pct(sdk, 50), p99: pct(sdk, 99) },
    dockerCli: { p50: pct(cli, 50), p99: pct(cli, 99) },
    engineApi: { p50: pct(api, 50), p99: pct(api, 99) },
    speedupVsDockerCliP50: Number((pct(cli, 50) / pct(sdk, 50)).toFixed(1)),
    speedupVsEngineApiP50: Number((pct(api, 50) / pct(sdk, 50)).toFixed(1)),
  };

  // Files: 256 MiB through the tmpfs.
  const size = 256 << 20;
  const block = randomBytes(1 << 20);
  let t = performance.now();
  await c.client.writeFile(
    "/tmp/bench.bin",
    Readable.from(
      (function* () {
        for (let i = 0; i < size >> 20; i++) yield block;
      })(),
    ),
  );
  const writeS = (performance.now() - t) / 1000;
  t = performance.now();
  let got = 0;
  for await (const chunk of await c.client.readStream("/tmp/bench.bin"))
    got += (chunk as Buffer).length;
  const readS = (performance.now() - t) / 1000;
  if (got !== size) throw new Error(`read ${got} bytes, wrote ${size}`);
  await c.client.remove("/tmp/bench.bin");
  results.files = {
    bytes: size,
    writeMiBps: Math.round(size / 2 ** 20 / writeS),
    readMiBps: Math.round(size / 2 ** 20 / readS),
  };

  // RSS: idle (started, nothing asked yet), after the work above, then the
  // high-water mark under 100 concurrent execs.
  await new Promise((r) => setTimeout(r, 2000));
  const idle = statusKiB(pid, "VmRSS");
  await Promise.all(
    Array.from({ length: 100 }, () => c.client.exec(["/workload", "sleep", "500"])),
  );
  results.rss = {
    idleKiBAtStart: idleAtStart,
    idleKiBAfterExecsAndFiles: idle,
    peakKiBUnder100ConcurrentExecs: statusKiB(pid, "VmHWM"),
    afterKiB: statusKiB(pid, "VmRSS"),
  };
} finally {
  c.client.close();
  await docker(["rm", "-f", "-v", name]);
}

writeFileSync(join(REPO_ROOT, "bench/results/agent.json"), `${JSON.stringify(results, null, 2)}\n`);
console.log(JSON.stringify(results, null, 2));
