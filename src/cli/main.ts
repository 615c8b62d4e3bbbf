#!/usr/bin/env node
// sandbox-operator: one executable, several entry points (the operator image
// runs the controller; the same image runs the egress sidecar).
// Each command's module is imported only when that command runs: the egress
// sidecar (one per sandbox) must not load the controller's Kubernetes and
// Docker clients, which would more than double its memory.
import { usageError } from "./usage.js";

const USAGE = `Usage: sandbox-operator <command> [flags]

Commands:
  controller   Run the Sandbox controller (see: sandbox-operator controller --help)
  egress-init  Install the egress firewall in this network namespace (init container)
  egress       Run the egress sidecar (DNS and proxies)
  gateway      Run the sandbox gateway (see: sandbox-operator gateway --help)
  crds         Print the CustomResourceDefinitions (kubectl apply -f -)
  version      Print the version
  help         Show this help
`;

const VERSION = "0.1.0";

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "controller": {
      const { CONTROLLER_USAGE } = await import("./controller-flags.js");
      if (wantsHelp(rest)) return help(CONTROLLER_USAGE);
      const { runController } = await import("./controller.js");
      return runController(rest);
    }
    case "egress-init": {
      const egress = await import("./egress.js");
      if (wantsHelp(rest)) return help(egress.EGRESS_INIT_USAGE);
      return egress.runEgressInitCommand(rest);
    }
    case "egress": {
      const egress = await import("./egress.js");
      if (wantsHelp(rest)) return help(egress.EGRESS_USAGE);
      return egress.runEgressCommand(rest);
    }
    case "gateway": {
      const gateway = await import("./gateway.js");
      if (wantsHelp(rest)) return help(gateway.GATEWAY_USAGE);
      return gateway.runGateway(rest);
    }
    case "crds":
      return (await import("./crds.js")).printCrds();
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
