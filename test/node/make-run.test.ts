// `make run` as a person runs it, on a host that can run a kubelet: hello runs
// for real on the local node, its output is what `kubectl logs hello -c
// sandbox` prints, the next steps say so, and Ctrl-C leaves no node behind.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { expect, it } from "vitest";
import { eventually } from "../support/eventually.js";
import { sh } from "../support/node/host.js";
import { REPO_ROOT } from "../support/paths.js";

const nodeNetnses = () =>
  new Set(
    sh("ip", ["netns", "list"])
      .split("\n")
      .map((l) => l.split(" ")[0]!)
      .filter((n) => n.startsWith("sbxnode-")),
  );

it("runs hello on a real node and prints its output; Ctrl-C removes the node", async () => {
  const before = nodeNetnses();
  const child = spawn(process.execPath, ["--import", "tsx", join(REPO_ROOT, "hack/run-local.ts")], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d) => {
    output += d;
  });
  child.stderr.on("data", (d) => {
    output += d;
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  let ours: string[] = [];
  try {
    await eventually(() => expect(output).toContain("Ctrl-C stops everything"), {
      timeout: 300_000,
      interval: 500,
    });
    expect(output).toMatch(/node local-node Ready in \d+ ms/);
    expect(output).toMatch(/hello\s+Succeeded\s+pod/);
    expect(output).toContain("$ kubectl logs hello -c sandbox\nhello from a sandbox\n");
    expect(output).toContain("pod backend on a real node");
    expect(output).not.toContain("SIMULATED");
    expect(output).toContain("kubectl logs hello -c sandbox");
    ours = [...nodeNetnses()].filter((n) => !before.has(n));
    expect(ours).toHaveLength(1);
  } finally {
    child.kill("SIGINT");
  }
  expect(await exited).toBe(0);
  const kubeconfig = /export KUBECONFIG=(\S+)/.exec(output)?.[1];
  expect(kubeconfig).toBeDefined();
  const after = nodeNetnses();
  for (const n of ours) expect(after.has(n), `${n} removed`).toBe(false);
}, 400_000);
