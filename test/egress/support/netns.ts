// Network namespaces for the egress tests. Every address used lives inside
// namespaces created here; the namespaces have no link to the host's network,
// so no test packet can reach anything but these namespaces.
import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { type ExecResult, type JsonLinesProcess, must, run, spawnJsonLines } from "./processes.js";

/** Prefix of every namespace these tests create (stale ones are collected by it). */
const PREFIX = "egt";

export interface RunAs {
  uid: number;
  gid?: number;
}

export class Netns {
  private readonly children: JsonLinesProcess[] = [];

  private constructor(readonly name: string) {}

  static async create(name: string): Promise<Netns> {
    await must(["ip", "netns", "add", name]);
    const ns = new Netns(name);
    await must(["ip", "-n", name, "link", "set", "lo", "up"]);
    return ns;
  }

  /** argv prefix that runs a command in this namespace, optionally as another user (no capabilities). */
  wrap(argv: string[], as?: RunAs): string[] {
    const user = as
      ? [
          "setpriv",
          `--reuid=${as.uid}`,
          `--regid=${as.gid ?? as.uid}`,
          "--clear-groups",
          "--inh-caps=-all",
          "--",
        ]
      : [];
    return ["ip", "netns", "exec", this.name, ...user, ...argv];
  }

  exec(
    argv: string[],
    opts: { as?: RunAs; timeoutMs?: number; input?: string } = {},
  ): Promise<ExecResult> {
    return run(this.wrap(argv, opts.as), opts);
  }

  spawn(argv: string[], as?: RunAs): JsonLinesProcess {
    const p = spawnJsonLines(this.wrap(argv, as));
    this.children.push(p);
    return p;
  }

  /** Files under /etc/netns/NAME/ replace /etc/NAME inside `ip netns exec`. */
  etcFile(file: string, content: string): void {
    mkdirSync(`/etc/netns/${this.name}`, { recursive: true });
    writeFileSync(`/etc/netns/${this.name}/${file}`, content);
  }

  async destroy(): Promise<void> {
    await Promise.allSettled(this.children.map((c) => c.kill("SIGKILL")));
    await run(["ip", "netns", "del", this.name]);
    rmSync(`/etc/netns/${this.name}`, { recursive: true, force: true });
  }
}

/** A unique name for this test run: egt-<pid>-<random>-<role>. */
export function uniqueName(role: string): string {
  return `${PREFIX}-${process.pid}-${randomBytes(3).toString("hex")}-${role}`;
}

/** Delete namespaces left by earlier runs whose process is gone (a crash, a kill -9). */
export async function collectStaleNamespaces(): Promise<void> {
  const list = await run(["ip", "netns", "list"]);
  for (const line of list.stdout.split("\n")) {
    const name = line.split(" ")[0] ?? "";
    const m = new RegExp(`^${PREFIX}-(\\d+)-`).exec(name);
    if (!m || isAlive(Number(m[1]))) continue;
    await run(["ip", "netns", "del", name]);
    rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The stand-in internet: documentation and test ranges, local to the "internet" namespace. */
export const NET = {
  gateway: "198.51.100.1",
  sandbox: "198.51.100.2",
  allowed: "198.51.100.10",
  denied: "198.51.100.20",
  dns: "198.51.100.53",
  metadata: "169.254.169.254",
  privateHost: "10.99.0.10",
  gateway6: "fd00:5b::1",
  sandbox6: "fd00:5b::2",
} as const;

export interface Topology {
  internet: Netns;
  sandbox: Netns;
  destroy(): Promise<void>;
}

/**
 * Two namespaces joined by a veth pair: "internet" (servers on every address
 * in NET) and "sandbox" (the workload's namespace, default route via internet).
 */
export async function createTopology(): Promise<Topology> {
  const created: Netns[] = [];
  const destroy = async () => {
    for (const ns of created.reverse()) await ns.destroy();
  };
  try {
    const internet = await Netns.create(uniqueName("net"));
    created.push(internet);
    const sandbox = await Netns.create(uniqueName("sbx"));
    created.push(sandbox);
    const i = (args: string) => must(["ip", "-n", internet.name, ...args.split(" ")]);
    const s = (args: string) => must(["ip", "-n", sandbox.name, ...args.split(" ")]);
    await must([
      "ip",
      "-n",
      internet.name,
      "link",
      "add",
      "eth0",
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      sandbox.name,
    ]);
    for (const a of [NET.gateway, NET.allowed, NET.denied, NET.dns])
      await i(`addr add ${a}/24 dev eth0`);
    await i(`addr add ${NET.metadata}/32 dev eth0`);
    await i(`addr add ${NET.privateHost}/32 dev eth0`);
    await i(`addr add ${NET.gateway6}/64 dev eth0 nodad`);
    await i("link set eth0 up");
    await s(`addr add ${NET.sandbox}/24 dev eth0`);
    await s(`addr add ${NET.sandbox6}/64 dev eth0 nodad`);
    await s("link set eth0 up");
    await s(`route add default via ${NET.gateway}`);
    await s(`-6 route add default via ${NET.gateway6}`);
    return { internet, sandbox, destroy };
  } catch (err) {
    await destroy();
    throw err;
  }
}
