// Which egress executable the black-box suites run: the Go one
// (dist/egress/sandbox-egress, `make egress`) unless SANDBOX_EGRESS_IMPL=ts
// asks for the TypeScript CLI (`sandbox-operator egress-init` / `egress`, kept
// as the benchmark's baseline). Both take the same subcommands and flags and
// write the same log lines, so the suites run unchanged against either.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../../support/paths.js";

export type EgressImpl = "go" | "ts";

export const EGRESS_IMPL: EgressImpl = process.env.SANDBOX_EGRESS_IMPL === "ts" ? "ts" : "go";

export const GO_EGRESS_BINARY = join(REPO_ROOT, "dist/egress/sandbox-egress");
export const TS_EGRESS_CLI = [process.execPath, join(REPO_ROOT, "dist/cli/main.js")];

function egressCli(impl: EgressImpl): string[] {
  if (impl === "ts") return TS_EGRESS_CLI;
  if (!existsSync(GO_EGRESS_BINARY)) {
    throw new Error(`${GO_EGRESS_BINARY} is missing: run \`make egress\` (or make build)`);
  }
  return [GO_EGRESS_BINARY];
}

/** argv prefix of the egress executable; append "egress-init" or "egress" and flags. */
export const EGRESS_CLI = egressCli(EGRESS_IMPL);
