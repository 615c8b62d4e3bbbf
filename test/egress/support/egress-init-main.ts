// Run the lockdown from JSON options (argv[2]) the way `sandbox-operator
// egress-init` will: exit 0 once applied and verified, 1 with the reason otherwise.

import type { EgressInitOptions } from "../../../src/egress/firewall/init.js";
import { parsePolicy, runEgressInit } from "../../../src/egress/index.js";
import { createLogger } from "../../../src/observability/logger.js";

type Args = Omit<EgressInitOptions, "policy" | "logger"> & { policy: unknown };
const args = JSON.parse(process.argv[2]!) as Args;
try {
  const result = await runEgressInit({
    ...args,
    policy: parsePolicy(args.policy),
    logger: createLogger({ destination: process.stdout }),
  });
  process.stdout.write(
    `${JSON.stringify({ event: "applied", variant: result.binaries.variant, ipv6: result.ipv6 })}\n`,
  );
} catch (err) {
  process.stderr.write(`egress-init: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
