// The agent's memory when idle, before and after work (figures, not a timed
// test): a local agent (no container, no Docker), 100 concurrent execs and a
// 50 MiB file written and read back, then a quiet second, after which the
// agent returns freed memory to the kernel (agent/internal/idle).
//
//   npx tsx bench/agent/idle-rss.ts   (writes bench/results/agent-idle-rss.json)
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { startLocalAgent } from "../../test/support/agent.js";
import { REPO_ROOT } from "../../test/support/paths.js";

const kib = (pid: number, key: string) =>
  Number(new RegExp(`${key}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const dir = mkdtempSync(join(tmpdir(), "agent-rss-"));
const agent = await startLocalAgent(dir);
const pid = agent.proc.pid!;
try {
  await sleep(200);
  const idleAtStart = kib(pid, "VmRSS");
  const anonAtStart = kib(pid, "RssAnon");
  const fileAtStart = kib(pid, "RssFile");
  await Promise.all(Array.from({ length: 100 }, () => agent.client.exec(["sleep", "0.2"])));
  const data = randomBytes(50 * 2 ** 20);
  await agent.client.writeFile(join(dir, "big"), Readable.from([data]));
  await agent.client.readFile(join(dir, "big"));
  const afterWork = kib(pid, "VmRSS");
  const peak = kib(pid, "VmHWM");
  await sleep(1500);
  const idleAfterWork = kib(pid, "VmRSS");
  // Anonymous memory (heap, stacks) vs the binary's pages touched so far.
  const anonAfterWork = kib(pid, "RssAnon");
  const fileAfterWork = kib(pid, "RssFile");
  const results = {
    date: new Date().toISOString(),
    idleAtStartKiB: idleAtStart,
    rightAfterWorkKiB: afterWork,
    peakKiB: peak,
    idleAfterWorkKiB: idleAfterWork,
    anonKiB: { atStart: anonAtStart, idleAfterWork: anonAfterWork },
    binaryPagesKiB: { atStart: fileAtStart, idleAfterWork: fileAfterWork },
  };
  console.log(JSON.stringify(results));
  writeFileSync(
    join(REPO_ROOT, "bench/results/agent-idle-rss.json"),
    `${JSON.stringify(results, null, 2)}\n`,
  );
} finally {
  await agent.stop();
}
