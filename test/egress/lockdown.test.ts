// The lockdown applied to real network namespaces with both iptables
// implementations: applied atomically, verified by reading it back, idempotent,
// leaving other tools' rules alone, and failing loudly when the kernel does not
// hold what was intended.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectStaleNamespaces, Netns, uniqueName } from "./support/netns.js";
import { requireRootAndTools, tsNode } from "./support/processes.js";

const INIT = "test/egress/support/egress-init-main.ts";
const POLICY = {
  defaultAction: "deny",
  rules: [
    { action: "allow", target: "api.example.com" },
    { action: "allow", target: "192.0.2.0/24", ports: [5432] },
  ],
};

beforeAll(async () => {
  requireRootAndTools([
    "ip",
    "setpriv",
    "iptables-nft-restore",
    "iptables-legacy-restore",
    "ip6tables-nft-restore",
  ]);
  await collectStaleNamespaces();
});

describe.each(["nft", "legacy"] as const)("lockdown with iptables-%s", (variant) => {
  let ns: Netns;
  const save = async (six = false) => {
    const r = await ns.exec([`ip${six ? "6" : ""}tables-${variant}-save`]);
    expect(r.code).toBe(0);
    return r.stdout;
  };
  const init = (args: Record<string, unknown>) =>
    ns.exec(tsNode(INIT, { variant, ...args }), { timeoutMs: 30_000 });

  beforeAll(async () => {
    ns = await Netns.create(uniqueName(`fw${variant.slice(0, 3)}`));
  });
  afterAll(async () => {
    await ns?.destroy();
  });

  it("installs the rules, keeps others' rules, and reads back exactly what was intended", async () => {
    // What Docker's embedded DNS leaves in a container's namespace.
    await ns.exec([`iptables-${variant}`, "-t", "nat", "-N", "DOCKER_OUTPUT"]);
    await ns.exec([
      `iptables-${variant}`,
      "-t",
      "nat",
      "-A",
      "OUTPUT",
      "-d",
      "127.0.0.11/32",
      "-j",
      "DOCKER_OUTPUT",
    ]);

    const r = await init({ policy: POLICY, sidecarUid: 1337 });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`"variant":"${variant}"`);

    const v4 = await save();
    expect(v4).toContain(":OUTPUT DROP");
    expect(v4).toContain("-A OUTPUT -j SANDBOX-EGRESS");
    expect(v4).toContain("-A SANDBOX-EGRESS -m owner --uid-owner 1337 -j ACCEPT");
    // The firewall holds no policy: the address rule is the sidecar's to judge,
    // on TCP the lockdown redirects to it.
    expect(v4).not.toContain("192.0.2.0/24");
    expect(v4).toContain("-A SANDBOX-EGRESS -p tcp -j REDIRECT --to-ports 15080");
    expect(v4).toContain("-A SANDBOX-EGRESS -p udp -m udp --dport 53 -j REDIRECT --to-ports 15053");
    expect(v4).toContain("-A OUTPUT -d 127.0.0.11/32 -j DOCKER_OUTPUT");
    const v6 = await save(true);
    expect(v6).toContain(":OUTPUT DROP");
    expect(v6).toContain("-A SANDBOX-EGRESS -j REJECT --reject-with icmp6-adm-prohibited");
  });

  it("re-applies idempotently: one jump per table, the new UID and ports only", async () => {
    const r = await init({
      policy: { defaultAction: "deny", rules: [{ action: "allow", target: "203.0.113.7" }] },
      sidecarUid: 4242,
      ports: { dns: 5353 },
    });
    expect(r.code, r.stderr).toBe(0);
    const v4 = await save();
    expect(v4.match(/^-A OUTPUT -j SANDBOX-EGRESS$/gm)).toHaveLength(2); // filter and nat
    expect(v4).not.toContain("192.0.2.0/24");
    expect(v4).not.toContain("--uid-owner 1337");
    expect(v4).not.toContain("203.0.113.7");
    expect(v4).toContain("--dport 53 -j REDIRECT --to-ports 5353");
    expect(v4).toContain("-A OUTPUT -d 127.0.0.11/32 -j DOCKER_OUTPUT");
  });

  it("cannot be flushed or changed by an unprivileged workload", async () => {
    const before = await save();
    for (const argv of [
      [`iptables-${variant}`, "-F"],
      [`iptables-${variant}`, "-P", "OUTPUT", "ACCEPT"],
      [`iptables-${variant}`, "-t", "nat", "-F"],
      [`ip6tables-${variant}`, "-F"],
    ]) {
      const r = await ns.exec(argv, { as: { uid: 1000 } });
      expect(r.code, argv.join(" ")).not.toBe(0);
      expect(r.stderr).toMatch(/Permission denied|not permitted/i);
    }
    const strip = (s: string) => s.replace(/^#.*$/gm, "");
    expect(strip(await save())).toBe(strip(before));
  });

  it("fails loudly when the rules read back differ from the intent", async () => {
    const r = await init({
      policy: POLICY,
      // A restore that accepts its input and does nothing: the read-back must catch it.
      binaries: {
        variant,
        restore4: "true",
        save4: `iptables-${variant}-save`,
        restore6: "true",
        save6: `ip6tables-${variant}-save`,
      },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("IPv4 lockdown verification failed");
    expect(r.stderr).toMatch(
      /filter SANDBOX-EGRESS rule 4: got .*uid-owner 4242.*want .*uid-owner 1337/,
    );
  });

  it("fails loudly when the rules cannot be applied", async () => {
    const r = await init({
      policy: POLICY,
      variant: undefined,
      binaries: {
        variant,
        restore4: "false",
        save4: `iptables-${variant}-save`,
        restore6: "false",
        save6: `ip6tables-${variant}-save`,
      },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("IPv4 lockdown could not be applied");
  });
});

describe("choosing the iptables implementation", () => {
  let ns: Netns;
  beforeAll(async () => {
    ns = await Netns.create(uniqueName("fwauto"));
  });
  afterAll(async () => {
    await ns?.destroy();
  });

  it("auto picks nft in an empty namespace, legacy where only legacy holds rules", async () => {
    const first = await ns.exec(tsNode(INIT, { policy: POLICY, variant: "auto" }), {
      timeoutMs: 30_000,
    });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain('"variant":"nft"');

    const other = await Netns.create(uniqueName("fwleg"));
    try {
      await other.exec([
        "iptables-legacy",
        "-A",
        "INPUT",
        "-p",
        "tcp",
        "--dport",
        "9",
        "-j",
        "DROP",
      ]);
      const r = await other.exec(tsNode(INIT, { policy: POLICY, variant: "auto" }), {
        timeoutMs: 30_000,
      });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('"variant":"legacy"');
      expect((await other.exec(["iptables-legacy-save"])).stdout).toContain(
        "-A OUTPUT -j SANDBOX-EGRESS",
      );
    } finally {
      await other.destroy();
    }
  });
});
