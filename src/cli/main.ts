#!/usr/bin/env node
// sandbox-operator: one executable, several entry points (the operator image
// runs the controller; the same image runs the egress sidecar).
import { stringify } from "yaml";
import { sandboxCRD } from "../api/crd/crd.js";
import { runController } from "./controller.js";
import { CONTROLLER_USAGE } from "./controller-flags.js";
import {
  EGRESS_INIT_USAGE,
  EGRESS_USAGE,
  runEgressCommand,
  runEgressInitCommand,
} from "./egress.js";
import { usageError } from "./usage.js";

const USAGE = `Usage: sandbox-operator <command> [flags]

Commands:
  controller Run the Sandbox controller (see: sandbox-operator controller --help)
  egress-init  Install the egress firewall in this network namespace (init container)
  egress     Run the egress sidecar (DNS and proxies)
  crds       Print the CustomResourceDefinitions (kubectl apply -f -)
  version    Print the version
  help       Show this help
`;

const VERSION = "0.1.0";

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "controller":
      if (wantsHelp(rest)) return help(CONTROLLER_USAGE);
      return runController(rest);
    case "egress-init":
      if (wantsHelp(rest)) return help(EGRESS_INIT_USAGE);
      return runEgressInitCommand(rest);
    case "egress":
      if (wantsHelp(rest)) return help(EGRESS_USAGE);
      return runEgressCommand(rest);
    case "crds":
      process.stdout.write(stringify(sandboxCRD(), { lineWidth: 0 }));
      return 0;
    case "version":
    case "--version":
      process.stdout.write(`sandbox-operator ${VERSION}\n`);
      return 0;
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return 0;
    case undefined:
      return usageError("no command given", USAGE);
    default:
      return usageError(`unknown command "${command}"`, USAGE);
  }
}

function wantsHelp(argv: string[]): boolean {
  return argv.includes("--help") || argv.includes("-h");
}

function help(text: string): number {
  process.stdout.write(text);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  },
);
