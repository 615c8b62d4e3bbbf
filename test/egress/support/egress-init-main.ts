// Run the lockdown from JSON options (argv[2]) through the real `egress-init`
// command of the egress executable under test (support/egress-binary.ts): exit
// 0 once applied and verified, 1 with the reason on stderr otherwise. The
// options map onto the command's flags; the policy goes through a file, as in
// both backends.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EgressInitOptions } from "../../../src/egress/firewall/init.js";
import { EGRESS_CLI } from "./egress-binary.js";

type Args = Omit<EgressInitOptions, "policy" | "logger"> & { policy: unknown };
const args = JSON.parse(process.argv[2]!) as Args;

const dir = mkdtempSync(join(tmpdir(), "egress-init-"));
try {
  const policyFile = join(dir, "policy.json");
  writeFileSync(policyFile, JSON.stringify(args.policy ?? {}));
  const flags = [`--policy-file=${policyFile}`];
  if (args.sidecarUid !== undefined) flags.push(`--sidecar-uid=${args.sidecarUid}`);
  if (args.ports?.dns !== undefined) flags.push(`--dns-port=${args.ports.dns}`);
  if (args.ports?.http !== undefined) flags.push(`--http-port=${args.ports.http}`);
  if (args.ports?.tls !== undefined) flags.push(`--tls-port=${args.ports.tls}`);
  if (args.variant !== undefined) flags.push(`--iptables=${args.variant}`);
  if (args.binaries) {
    flags.push(
      `--iptables-restore=${args.binaries.restore4}`,
      `--iptables-save=${args.binaries.save4}`,
      `--ip6tables-restore=${args.binaries.restore6}`,
      `--ip6tables-save=${args.binaries.save6}`,
    );
  }
  const [file, ...prefix] = EGRESS_CLI;
  const r = spawnSync(file!, [...prefix, "egress-init", ...flags], { encoding: "utf8" });
  process.stdout.write(r.stdout);
  if (r.status === 0) {
    process.stdout.write(`${JSON.stringify({ event: "applied" })}\n`);
  } else {
    // The command logs why as JSON on stdout ("err"); say it plainly on stderr too.
    const reasons = r.stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { err?: string })
      .flatMap((l) => (l.err ? [l.err] : []));
    process.stderr.write(`egress-init: ${[...reasons, r.stderr].join("\n")}\n`);
    process.exitCode = 1;
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
