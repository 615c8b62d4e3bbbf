// The kubectl plugin's input handling, run as the built executable: --help on
// every command, and bad input rejected with a clear message and exit code 2
// before anything talks to a cluster.
import { execFileSync, spawnSync } from "node:child_process";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/paths.js";

const SDK = join(REPO_ROOT, "packages/sdk");
const BIN = join(SDK, "dist/kubectl-sandbox.js");

beforeAll(() => {
  execFileSync("node", ["build.mjs", "--no-types"], { cwd: SDK });
}, 60_000);

const cli = (...args: string[]) => {
  // A kubeconfig that points nowhere: none of these may get as far as a request.
  const r = spawnSync("node", [BIN, ...args], {
    encoding: "utf8",
    env: { ...process.env, KUBECONFIG: "/nonexistent" },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

describe("kubectl-sandbox", { timeout: 30_000 }, () => {
  it.each(["run", "claim", "exec", "cp", "logs", "port-forward", "ls", "rm", "renew"])(
    "%s --help prints its usage and exits 0",
    (cmd) => {
      const r = cli(cmd, "--help");
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: kubectl sandbox ${cmd}`));
      expect(r.stdout).toContain("--kubeconfig");
    },
  );

  it("takes global flags before the command too", () => {
    const r = cli("-n", "ns1", "--kubeconfig=/nonexistent", "renew", "x");
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--ttl SECONDS is required/);
  });

  it("lists the commands with --help, and with nothing exits 2", { timeout: 30_000 }, () => {
    expect(cli("--help")).toMatchObject({
      code: 0,
      stdout: expect.stringContaining("port-forward"),
    });
    expect(cli().code).toBe(2);
  });

  it.each([
    [["frobnicate"], /unknown command "frobnicate"/],
    [["run", "--bogus"], /Unknown option '--bogus'/],
    [["run"], /--image \(or a --file with spec.image\) is required/],
    [["run", "--image", "x", "--ttl", "0"], /--ttl: "0" is not an integer ≥ 1/],
    [["run", "--image", "x", "-e", "NOVALUE"], /--env: "NOVALUE" is not NAME=VALUE/],
    [["run", "--image", "x", "--backend", "vm"], /--backend: "vm" is not pod or docker/],
    [
      ["run", "--image", "x", "python3"],
      /unexpected argument "python3" \(put the command after --\)/,
    ],
    [["run", "-f", "/nonexistent.yaml"], /--file: ENOENT/],
    [["run", "--template", "py"], /COMMAND is required with --template/],
    [
      ["run", "--template", "py", "--image", "x", "--", "ls"],
      /--image cannot be used with --template/,
    ],
    [["run", "--template", "py", "-p", "80", "--", "ls"], /--port cannot be used with --template/],
    [["run", "--image", "x", "--pool", "p"], /--pool needs --template/],
    [["claim"], /--template is required/],
    [["claim", "--template", "py", "extra"], /unexpected argument "extra"/],
    [["claim", "--template", "py", "--ttl", "0"], /--ttl: "0" is not an integer ≥ 1/],
    [["claim", "--template", "py", "-e", "X"], /--env: "X" is not NAME=VALUE/],
    [["claim", "--template", "py", "--image", "x"], /Unknown option '--image'/],
    [["exec"], /NAME is required/],
    [["exec", "sbx"], /COMMAND is required/],
    [["exec", "a", "b", "--", "ls"], /expected one NAME, got 2/],
    [["cp", "a", "b"], /exactly one of SRC and DST must be NAME:PATH/],
    [["cp", "a:/x", "b:/y"], /exactly one of SRC and DST must be NAME:PATH/],
    [["cp", "sbx:", "."], /the path after NAME: is empty/],
    [["logs", "x", "--since", "yesterday"], /--since: "yesterday" is neither/],
    [["logs", "x", "--tail", "-3"], /--tail/],
    [["port-forward", "x"], /expected NAME and \[LOCAL_PORT:\]PORT/],
    [["port-forward", "x", "abc"], /PORT: "abc" is not an integer/],
    [["rm"], /NAME is required/],
    [["renew", "x"], /--ttl SECONDS is required/],
    [["ls", "extra"], /unexpected argument "extra"/],
  ])("%j is rejected with exit code 2", (args, message) => {
    const r = cli(...(args as string[]));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: /);
    expect(r.stderr).toMatch(message as RegExp);
    expect(r.stderr).toMatch(/--help' for/);
  });
});
