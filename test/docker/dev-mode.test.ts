// `make dev` as a person runs it: a local control plane, the controller with the
// docker backend, examples/hello.yaml run as containers, a kubeconfig printed,
// and Ctrl-C leaving nothing behind.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { docker, ensureDockerd, labelled, SANDBOX_IMAGE } from "../support/docker.js";
import { eventually } from "../support/eventually.js";
import { REPO_ROOT } from "../support/paths.js";

const DEV_LABEL = "sandboxing.dev/owner=dev";

beforeAll(async () => {
  await ensureDockerd();
  for (const name of await labelled("container", DEV_LABEL)) await docker(["rm", "-f", name]);
}, 600_000);
afterAll(async () => {
  for (const name of await labelled("container", DEV_LABEL)) await docker(["rm", "-f", name]);
});

it("runs hello on the docker backend, prints how to use it, and cleans up on Ctrl-C", async () => {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(REPO_ROOT, "hack/run-local.ts"), "--docker"],
    {
      cwd: REPO_ROOT,
      // The example's upstream image cannot be pulled here; nothing in hello resolves names.
      env: { ...process.env, SANDBOX_DEV_IMAGE: SANDBOX_IMAGE, DOCKER_DNS: "127.0.0.1" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  child.stdout.on("data", (d) => {
    output += d;
  });
  child.stderr.on("data", (d) => {
    output += d;
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  try {
    await eventually(() => expect(output).toContain("Ctrl-C stops everything"), {
      timeout: 240_000,
    });
    expect(output).toMatch(/hello\s+Succeeded\s+docker/);
    expect(output).toMatch(/export KUBECONFIG=\S+admin\.kubeconfig/);
    expect(output).toContain("kubectl get sbx");
    expect(await labelled("container", DEV_LABEL)).toHaveLength(2);
  } finally {
    child.kill("SIGINT");
  }
  expect(await exited).toBe(0);
  expect(await labelled("container", DEV_LABEL)).toEqual([]);
  expect(await labelled("network", DEV_LABEL)).toEqual([]);
}, 300_000);
