import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { runController } from "./controller.js";

// A kubeconfig nobody listens behind: the checks below fail before any request.
function unreachableKubeconfig(): string {
  const path = join(mkdtempSync(join(tmpdir(), "controller-cli-")), "kubeconfig");
  writeFileSync(
    path,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "c", cluster: { server: "https://127.0.0.1:1" } }],
      users: [{ name: "u", user: { token: "t" } }],
      contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
      "current-context": "x",
    }),
  );
  return path;
}

describe("sandbox-operator controller", () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.restoreAllMocks();
  });

  it("refuses to start the docker backend without the sandbox agent, naming the path", async () => {
    vi.stubEnv("SANDBOX_AGENT_BINARY", "/nonexistent/sandbox-agent");
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const code = await runController([
      `--kubeconfig=${unreachableKubeconfig()}`,
      "--default-backend=docker",
      "--docker-dns=192.0.2.53",
      "--metrics-bind-address=0",
      "--health-probe-bind-address=0",
    ]);
    expect(code).toBe(2);
    expect(stderr.mock.calls.join("")).toContain("/nonexistent/sandbox-agent");
  });
});
