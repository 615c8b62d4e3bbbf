// `sandbox-operator egress-init` (install the fail-closed firewall, then exit)
// and `sandbox-operator egress` (the sidecar: DNS and proxies, until SIGTERM).
// Both read the sandbox's `network.egress` policy from a file.
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { z } from "zod";
import { EGRESS_PORTS, EGRESS_SIDECAR_UID } from "../egress/contract.js";
import { type IptablesBinaries, runEgressInit } from "../egress/firewall/index.js";
import { policyFromText } from "../egress/policy/index.js";
import { runEgressSidecar } from "../egress/sidecar/index.js";
import { createLogger } from "../observability/logger.js";
import { usageError } from "./usage.js";

export const EGRESS_INIT_USAGE = `Usage: sandbox-operator egress-init [flags]

Installs the egress lockdown (iptables and ip6tables) in the current network
namespace, verifies it, and exits. Needs root with NET_ADMIN.

Flags:
  --policy-file PATH    the sandbox's network.egress policy (JSON or YAML)
  --sidecar-uid UID     the only UID allowed out directly (default ${EGRESS_SIDECAR_UID})
  --dns-port N          where UDP/TCP 53 is redirected (default ${EGRESS_PORTS.dns})
  --http-port N         where TCP 80 is redirected (default ${EGRESS_PORTS.http})
  --tls-port N          where TCP 443 is redirected (default ${EGRESS_PORTS.tls})
  --iptables auto|nft|legacy   iptables implementation (default auto)
  --iptables-restore PATH, --iptables-save PATH, --ip6tables-restore PATH,
  --ip6tables-save PATH   explicit tools, all four together (override --iptables)
`;

export const EGRESS_USAGE = `Usage: sandbox-operator egress [flags]

Runs the egress sidecar: a DNS proxy answering only allowed names, an explicit
HTTP proxy (CONNECT), and transparent proxies judging port 80 by Host and 443 by
TLS SNI. Follows the policy file for changes.

Flags:
  --lockdown            first install the egress lockdown as egress-init does
                        (needs root with NET_ADMIN), then serve; with
                        --sidecar-uid the process then drops to that UID and
                        loses every capability (docker backend)
  --iptables auto|nft|legacy   iptables implementation for --lockdown (default auto)
  --policy-file PATH    the sandbox's network.egress policy (JSON or YAML)
  --sandbox ID          namespace/name, on every log line
  --sidecar-uid UID     drop to this UID after binding when started as root
  --proxy-port N        explicit proxy (default ${EGRESS_PORTS.proxy})
  --dns-port N          DNS proxy (default ${EGRESS_PORTS.dns})
  --http-port N         transparent HTTP (default ${EGRESS_PORTS.http})
  --tls-port N          transparent TLS (default ${EGRESS_PORTS.tls})
  --health-port N       probes only: /healthz /readyz, on every address (default ${EGRESS_PORTS.health})
  --metrics-port N      /metrics and detailed /readyz, on loopback (default ${EGRESS_PORTS.metrics})
  --upstream-dns HOST[:PORT]   resolver (default: first nameserver in /etc/resolv.conf)
`;

const port = z.coerce.number().int().min(1).max(65535);
const uid = z.coerce.number().int().min(1).max(2147483647);

const InitFlags = z.object({
  "policy-file": z.string().min(1),
  "sidecar-uid": uid.default(EGRESS_SIDECAR_UID),
  "dns-port": port.default(EGRESS_PORTS.dns),
  "http-port": port.default(EGRESS_PORTS.http),
  "tls-port": port.default(EGRESS_PORTS.tls),
  iptables: z.enum(["auto", "nft", "legacy"]).default("auto"),
  "iptables-restore": z.string().min(1).optional(),
  "iptables-save": z.string().min(1).optional(),
  "ip6tables-restore": z.string().min(1).optional(),
  "ip6tables-save": z.string().min(1).optional(),
});

/** The explicit tools, when all four were given (the Go binary takes the same flags). */
function explicitBinaries(flags: z.output<typeof InitFlags>): IptablesBinaries | undefined {
  const tools = [
    flags["iptables-restore"],
    flags["iptables-save"],
    flags["ip6tables-restore"],
    flags["ip6tables-save"],
  ];
  const given = tools.filter((t) => t !== undefined).length;
  if (given === 0) return undefined;
  if (given !== 4) {
    throw new Error(
      "--iptables-restore, --iptables-save, --ip6tables-restore and --ip6tables-save go together",
    );
  }
  const [restore4, save4, restore6, save6] = tools as string[];
  return {
    variant: "unknown",
    restore4: restore4!,
    save4: save4!,
    restore6: restore6!,
    save6: save6!,
  };
}

const SidecarFlags = z.object({
  "policy-file": z.string().min(1),
  lockdown: z.boolean().default(false),
  iptables: z.enum(["auto", "nft", "legacy"]).default("auto"),
  sandbox: z.string().min(1).default("unknown"),
  "sidecar-uid": uid.optional(),
  "proxy-port": port.default(EGRESS_PORTS.proxy),
  "dns-port": port.default(EGRESS_PORTS.dns),
  "http-port": port.default(EGRESS_PORTS.http),
  "tls-port": port.default(EGRESS_PORTS.tls),
  "health-port": port.default(EGRESS_PORTS.health),
  "metrics-port": port.default(EGRESS_PORTS.metrics),
  "upstream-dns": z.string().min(1).optional(),
});

/** Flags that take no value. */
const SWITCHES = new Set(["lockdown"]);

function parseFlags<S extends z.ZodObject>(schema: S, argv: string[]): z.output<S> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: Object.fromEntries(
      Object.keys(schema.shape).map((k) => [
        k,
        { type: SWITCHES.has(k) ? ("boolean" as const) : ("string" as const) },
      ]),
    ),
  });
  const parsed = schema.safeParse(values);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`--${String(issue.path[0])}: ${issue.message}`);
  }
  return parsed.data;
}

async function readPolicy(path: string) {
  return policyFromText(await readFile(path, "utf8"));
}

export async function runEgressInitCommand(argv: string[]): Promise<number> {
  let flags: z.output<typeof InitFlags>;
  let binaries: IptablesBinaries | undefined;
  try {
    flags = parseFlags(InitFlags, argv);
    binaries = explicitBinaries(flags);
  } catch (err) {
    return usageError((err as Error).message, EGRESS_INIT_USAGE);
  }
  const logger = createLogger();
  try {
    await runEgressInit({
      policy: await readPolicy(flags["policy-file"]),
      sidecarUid: flags["sidecar-uid"],
      ports: { dns: flags["dns-port"], http: flags["http-port"], tls: flags["tls-port"] },
      variant: flags.iptables,
      ...(binaries ? { binaries } : {}),
      logger,
    });
    return 0;
  } catch (err) {
    // Fail loudly: the workload must not start without the lockdown.
    logger.fatal({ err: (err as Error).message }, "egress lockdown failed");
    logger.flush();
    return 1;
  }
}

export async function runEgressCommand(argv: string[]): Promise<number> {
  let flags: z.output<typeof SidecarFlags>;
  try {
    flags = parseFlags(SidecarFlags, argv);
  } catch (err) {
    return usageError((err as Error).message, EGRESS_USAGE);
  }
  const logger = createLogger();
  if (flags.lockdown) {
    const sidecarUid = flags["sidecar-uid"];
    if (sidecarUid === undefined) {
      return usageError(
        "--lockdown needs --sidecar-uid (the UID the firewall lets out)",
        EGRESS_USAGE,
      );
    }
    try {
      await runEgressInit({
        policy: await readPolicy(flags["policy-file"]),
        sidecarUid,
        ports: { dns: flags["dns-port"], http: flags["http-port"], tls: flags["tls-port"] },
        variant: flags.iptables,
        logger,
      });
    } catch (err) {
      logger.fatal({ err: (err as Error).message }, "egress lockdown failed");
      logger.flush();
      return 1;
    }
  }
  const sidecar = await runEgressSidecar({
    sandboxId: flags.sandbox,
    policyPath: flags["policy-file"],
    upstreamDns: flags["upstream-dns"],
    ports: {
      proxy: flags["proxy-port"],
      dns: flags["dns-port"],
      http: flags["http-port"],
      tls: flags["tls-port"],
    },
    health: { host: "0.0.0.0", port: flags["health-port"] },
    metrics: { host: "127.0.0.1", port: flags["metrics-port"] },
    uid: flags["sidecar-uid"],
    gid: flags["sidecar-uid"],
    logger,
  });
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.once("SIGINT", () => resolve());
  });
  // Closing the sidecar closes egress: the firewall stays and nothing else is let out.
  await sidecar.close();
  return 0;
}
