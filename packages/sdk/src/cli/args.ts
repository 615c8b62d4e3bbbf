// Flag parsing shared by the commands: node:util parseArgs, strict, with the
// global flags; every parse error becomes a UsageError (exit code 2).
import { parseArgs } from "node:util";
import type { ClientOptions } from "../sandbox.js";
import { USAGE } from "./usage.js";

/** Bad input: exit code 2, with the command's usage hint. */
export class UsageError extends Error {}

type Options = NonNullable<NonNullable<Parameters<typeof parseArgs>[0]>["options"]>;

const GLOBAL: Options = {
  kubeconfig: { type: "string" },
  namespace: { type: "string", short: "n" },
  help: { type: "boolean", short: "h" },
};

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  /** Arguments after `--`. */
  rest: string[];
  client: ClientOptions;
}

export function parse(command: string, args: string[], options: Options): Parsed {
  const dash = args.indexOf("--");
  const own = dash >= 0 ? args.slice(0, dash) : args;
  const rest = dash >= 0 ? args.slice(dash + 1) : [];
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: own,
      options: { ...GLOBAL, ...options },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify .*$/s, ""));
  }
  const values = parsed.values as Parsed["values"];
  // "-n=ns" as kubectl accepts it (node's parser keeps the "=" in the value).
  if (typeof values.namespace === "string") values.namespace = values.namespace.replace(/^=/, "");
  if (typeof values.namespace === "string" && !values.namespace)
    throw new UsageError("--namespace: empty");
  if (values.help) {
    process.stdout.write(`${USAGE[command]}\n`);
    process.exit(0);
  }
  return {
    values,
    positionals: parsed.positionals,
    rest,
    client: {
      ...(typeof values.kubeconfig === "string" ? { kubeconfig: values.kubeconfig } : {}),
      ...(typeof values.namespace === "string" ? { namespace: values.namespace } : {}),
    },
  };
}
