// kubectl-sandbox: the kubectl plugin for people (`kubectl sandbox ...` when
// this executable is on PATH). Bad input exits 2 with a message naming the
// problem; a command's own exit code passes through.
//
// The commands (and with them @kubernetes/client-node, whose import is most
// of the start-up time) are loaded only once a command is known to run:
// `--help` and usage errors answer at once.
import { SandboxError } from "../../../../src/dataplane/errors.js";
import { UsageError } from "./args.js";
import { USAGE } from "./usage.js";

type Command = (args: string[]) => Promise<number>;
const commands = () => import("./commands.js");
const COMMANDS: Record<string, () => Promise<Command>> = {
  run: async () => (await commands()).run,
  claim: async () => (await commands()).claim,
  exec: async () => (await commands()).exec,
  cp: async () => (await import("./cp.js")).cp,
  logs: async () => (await commands()).logs,
  "port-forward": async () => (await commands()).portForward,
  ls: async () => (await commands()).ls,
  rm: async () => (await commands()).rm,
  renew: async () => (await commands()).renew,
  suspend: async () => (await commands()).suspend,
  resume: async () => (await commands()).resume,
};

/**
 * Global flags may come before the command (`kubectl sandbox -n ns exec ...`):
 * they are moved after it, where every command parses them.
 */
export function commandFirst(argv: string[]): string[] {
  const lead: string[] = [];
  let i = 0;
  while (i < argv.length && argv[i]!.startsWith("-") && argv[i] !== "--") {
    const a = argv[i]!;
    lead.push(a);
    // "--kubeconfig PATH" and "-n NS" take the next word; "--kubeconfig=PATH" does not.
    if ((a === "--kubeconfig" || a === "-n" || a === "--namespace") && i + 1 < argv.length) {
      lead.push(argv[i + 1]!);
      i++;
    }
    i++;
  }
  if (i >= argv.length || !lead.length) return argv;
  return [argv[i]!, ...lead, ...argv.slice(i + 1)];
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = commandFirst(argv);
  if (!command || command === "-h" || command === "--help" || command === "help") {
    process.stdout.write(`${USAGE[""]}\n`);
    return command ? 0 : 2;
  }
  const load = COMMANDS[command];
  if (!load) {
    process.stderr.write(
      `error: unknown command "${command}"\nRun 'kubectl sandbox --help' for the commands.\n`,
    );
    return 2;
  }
  const dash = args.indexOf("--");
  const own = dash >= 0 ? args.slice(0, dash) : args;
  if (own.includes("--help") || own.includes("-h")) {
    process.stdout.write(`${USAGE[command] ?? USAGE[""]}\n`);
    return 0;
  }
  try {
    return await (await load())(args);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(
        `error: ${err.message}\nRun 'kubectl sandbox ${command} --help' for usage.\n`,
      );
      return 2;
    }
    const msg =
      err instanceof SandboxError
        ? err.message
        : err instanceof Error && "body" in err
          ? `${err.message}`
          : String((err as Error)?.message ?? err);
    process.stderr.write(`error: ${msg}\n`);
    return 1;
  }
}

// Run when executed (not when imported by a test).
if (process.argv[1] && /kubectl-sandbox(\.js)?$|cli[/\\]main\.ts$/.test(process.argv[1])) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`error: ${err}\n`);
      process.exit(1);
    },
  );
}
