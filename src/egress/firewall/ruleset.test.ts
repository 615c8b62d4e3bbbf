// The lockdown's rules as pure data: generation, rendering for iptables-restore,
// parsing iptables-save, and verification. Applying them to a real kernel is
// tested in test/egress (network namespaces, both iptables variants).
import { describe, expect, it } from "vitest";
import type { EgressPolicy } from "../../api/sandbox-spec.js";
import { compilePolicy, reservedRanges } from "../policy/index.js";
import { renderRestore } from "./restore-script.js";
import { buildRuleset, CHAIN, DIRECT_CHAIN, type LockdownConfig } from "./ruleset.js";
import { parseSave } from "./save-parser.js";
import { verifyRuleset } from "./verify.js";

const config = (policy: EgressPolicy): LockdownConfig => ({
  policy: compilePolicy(policy),
  sidecarUid: 1337,
  ports: { dns: 15053, http: 15080, tls: 15443 },
  reserved: reservedRanges(["10.0.0.0/8", "169.254.0.0/16", "fc00::/7"]),
});

const POLICY: EgressPolicy = {
  defaultAction: "deny",
  rules: [
    { action: "allow", target: "api.example.com" },
    { action: "deny", target: "10.20.30.0/24" },
    { action: "allow", target: "10.20.1.2/16", ports: [5432, 443] },
    { action: "allow", target: "192.0.2.10" },
    { action: "allow", target: "2001:db8::/32" },
  ],
};

describe("buildRuleset", () => {
  const ruleset = buildRuleset(config(POLICY));
  const [filter, nat] = ruleset.ipv4;

  it("filter: loopback, replies and the sidecar pass; address rules in order; the rest is refused", () => {
    expect(filter).toEqual({
      table: "filter",
      policies: { OUTPUT: "DROP" },
      chains: {
        [CHAIN]: [
          "-A SANDBOX-EGRESS -o lo -j ACCEPT",
          "-A SANDBOX-EGRESS -d 127.0.0.1/32 -p tcp -m conntrack --ctstate DNAT -m multiport --dports 15053,15080,15443 -j ACCEPT",
          "-A SANDBOX-EGRESS -d 127.0.0.1/32 -p udp -m conntrack --ctstate DNAT -m udp --dport 15053 -j ACCEPT",
          "-A SANDBOX-EGRESS -m owner --uid-owner 1337 -j ACCEPT",
          "-A SANDBOX-EGRESS -m conntrack --ctstate RELATED,ESTABLISHED --ctdir REPLY -j ACCEPT",
          "-A SANDBOX-EGRESS -m conntrack --ctstate RELATED,ESTABLISHED -m owner ! --socket-exists -j ACCEPT",
          "-A SANDBOX-EGRESS -p udp -m udp --dport 53 -j REJECT --reject-with icmp-admin-prohibited",
          "-A SANDBOX-EGRESS -p tcp -m tcp --dport 53 -j REJECT --reject-with icmp-admin-prohibited",
          "-A SANDBOX-EGRESS -d 10.20.30.0/24 -j REJECT --reject-with icmp-admin-prohibited",
          "-A SANDBOX-EGRESS -d 10.20.0.0/16 -p tcp -m multiport --dports 5432,443 -j ACCEPT",
          "-A SANDBOX-EGRESS -d 10.20.0.0/16 -p udp -m multiport --dports 5432,443 -j ACCEPT",
          "-A SANDBOX-EGRESS -d 192.0.2.10/32 -j ACCEPT",
          "-A SANDBOX-EGRESS -j REJECT --reject-with icmp-admin-prohibited",
        ],
      },
    });
  });

  it("nat: DNS and 80/443 go to the sidecar unless an earlier address rule allows them directly", () => {
    expect(nat?.chains[CHAIN]).toEqual([
      "-A SANDBOX-EGRESS -m owner --uid-owner 1337 -j RETURN",
      "-A SANDBOX-EGRESS -p udp -m udp --dport 53 -j REDIRECT --to-ports 15053",
      "-A SANDBOX-EGRESS -p tcp -m tcp --dport 53 -j REDIRECT --to-ports 15053",
      "-A SANDBOX-EGRESS -o lo -j RETURN",
      "-A SANDBOX-EGRESS -p tcp -m multiport --dports 80,443 -j SANDBOX-EGRESS-DIRECT",
      "-A SANDBOX-EGRESS -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 15080",
      "-A SANDBOX-EGRESS -p tcp -m tcp --dport 443 -j REDIRECT --to-ports 15443",
    ]);
    expect(nat?.chains[DIRECT_CHAIN]).toEqual([
      "-A SANDBOX-EGRESS-DIRECT -d 10.20.30.0/24 -p tcp -m multiport --dports 80,443 -j RETURN",
      "-A SANDBOX-EGRESS-DIRECT -d 10.20.0.0/16 -p tcp -m multiport --dports 443 -j ACCEPT",
      "-A SANDBOX-EGRESS-DIRECT -d 192.0.2.10/32 -p tcp -m multiport --dports 80,443 -j ACCEPT",
    ]);
  });

  it("IPv6 is closed except loopback, whatever the policy says", () => {
    expect(ruleset.ipv6).toEqual([
      {
        table: "filter",
        policies: { OUTPUT: "DROP" },
        chains: {
          [CHAIN]: [
            "-A SANDBOX-EGRESS -o lo -j ACCEPT",
            "-A SANDBOX-EGRESS -j REJECT --reject-with icmp6-adm-prohibited",
          ],
        },
      },
    ]);
  });

  it("splits more than 15 ports over several multiport rules", () => {
    const ports = Array.from({ length: 20 }, (_, i) => 1000 + i);
    const rules = buildRuleset(
      config({
        defaultAction: "deny",
        rules: [{ action: "allow", target: "192.0.2.0/24", ports }],
      }),
    ).ipv4[0]!.chains[CHAIN]!.filter((r) => r.includes("-d 192.0.2.0/24"));
    expect(rules).toHaveLength(4);
    expect(rules[0]).toContain(`--dports ${ports.slice(0, 15).join(",")} `);
    expect(rules[1]).toContain("--dports 1015,1016,1017,1018,1019 ");
  });

  it("defaultAction allow opens direct traffic, but never to reserved ranges", () => {
    const rules = buildRuleset(
      config({ defaultAction: "allow", rules: [{ action: "allow", target: "10.1.0.0/16" }] }),
    ).ipv4[0]!.chains[CHAIN]!;
    expect(rules.slice(8)).toEqual([
      "-A SANDBOX-EGRESS -d 10.1.0.0/16 -j ACCEPT",
      "-A SANDBOX-EGRESS -d 10.0.0.0/8 -j REJECT --reject-with icmp-admin-prohibited",
      "-A SANDBOX-EGRESS -d 169.254.0.0/16 -j REJECT --reject-with icmp-admin-prohibited",
      "-A SANDBOX-EGRESS -p tcp -m multiport --dports 80,443 -j REJECT --reject-with icmp-admin-prohibited",
      "-A SANDBOX-EGRESS -j ACCEPT",
    ]);
  });

  it.each(["deny", "allow"] as const)(
    "defaultAction %s: no rule accepts a packet by its flow's conntrack state alone",
    (defaultAction) => {
      const rules = buildRuleset(config({ ...POLICY, defaultAction })).ipv4[0]!.chains[CHAIN]!;
      const byState = rules.filter((r) => r.includes("--ctstate") && r.endsWith("-j ACCEPT"));
      // Each is narrowed: redirected to the sidecar's listeners on 127.0.0.1, a
      // reply in a connection opened towards the sandbox, or a packet no socket sent.
      for (const rule of byState) {
        expect(rule).toMatch(
          /-d 127\.0\.0\.1\/32 .*--ctstate DNAT|--ctdir REPLY|! --socket-exists/,
        );
      }
      expect(byState).toHaveLength(4);
      // The sidecar's UID is accepted before any state-based rule that is not a redirect.
      const uid = rules.indexOf("-A SANDBOX-EGRESS -m owner --uid-owner 1337 -j ACCEPT");
      expect(uid).toBeGreaterThan(0);
      expect(rules.findIndex((r) => r.includes("ESTABLISHED"))).toBeGreaterThan(uid);
    },
  );

  it("uses the configured UID and ports", () => {
    const r = buildRuleset({
      ...config({ defaultAction: "deny" }),
      sidecarUid: 4242,
      ports: { dns: 1, http: 2, tls: 3 },
    });
    const nat = r.ipv4[1]!.chains[CHAIN]!.join("\n");
    expect(nat).toContain("--uid-owner 4242 -j RETURN");
    expect(nat).toContain("--dport 53 -j REDIRECT --to-ports 1");
    expect(nat).toContain("--dport 80 -j REDIRECT --to-ports 2");
    expect(nat).toContain("--dport 443 -j REDIRECT --to-ports 3");
  });
});

const SAVED = `# Generated by iptables-nft-save v1.8.9 (nf_tables)
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER_OUTPUT - [0:0]
-A OUTPUT -d 127.0.0.11/32 -j DOCKER_OUTPUT
-A OUTPUT -j SANDBOX-EGRESS
COMMIT
*filter
:OUTPUT ACCEPT [12:34]
COMMIT
`;

describe("renderRestore", () => {
  const ruleset = buildRuleset(config({ defaultAction: "deny" }));

  it("declares (and so flushes) only its own chains, replaces old jumps, commits per table", () => {
    const script = renderRestore(ruleset.ipv4, parseSave(SAVED));
    const lines = script.trim().split("\n");
    expect(lines.slice(0, 5)).toEqual([
      "*filter",
      ":OUTPUT DROP [0:0]",
      ":SANDBOX-EGRESS - [0:0]",
      "-I OUTPUT 1 -j SANDBOX-EGRESS",
      "-A SANDBOX-EGRESS -o lo -j ACCEPT",
    ]);
    const nat = lines.slice(lines.indexOf("*nat"));
    expect(nat.slice(0, 5)).toEqual([
      "*nat",
      ":SANDBOX-EGRESS - [0:0]",
      ":SANDBOX-EGRESS-DIRECT - [0:0]",
      "-D OUTPUT -j SANDBOX-EGRESS",
      "-I OUTPUT 1 -j SANDBOX-EGRESS",
    ]);
    expect(lines.filter((l) => l === "COMMIT")).toHaveLength(2);
    expect(script).not.toContain("DOCKER");
  });
});

describe("verifyRuleset", () => {
  const tables = buildRuleset(config(POLICY)).ipv4;
  const render = (mutate: (lines: string[]) => string[] = (l) => l) => {
    const lines = [
      "*filter",
      ":OUTPUT DROP [0:0]",
      ":SANDBOX-EGRESS - [0:0]",
      "-A OUTPUT -j SANDBOX-EGRESS",
    ];
    lines.push(...tables[0]!.chains[CHAIN]!, "COMMIT", "*nat", ":OUTPUT ACCEPT [0:0]");
    lines.push(":SANDBOX-EGRESS - [0:0]", ":SANDBOX-EGRESS-DIRECT - [0:0]");
    lines.push("-A OUTPUT -j SANDBOX-EGRESS", "-A OUTPUT -d 127.0.0.11/32 -j DOCKER_OUTPUT");
    lines.push(...tables[1]!.chains[CHAIN]!, ...tables[1]!.chains[DIRECT_CHAIN]!, "COMMIT");
    return parseSave(mutate(lines).join("\n"));
  };

  it("accepts exactly the intended rules, ignoring other chains' rules", () => {
    expect(verifyRuleset(tables, render())).toEqual([]);
  });

  it("reports a missing rule", () => {
    const problems = verifyRuleset(
      tables,
      render((l) => l.filter((x) => !x.includes("192.0.2.10/32 -j ACCEPT"))),
    );
    expect(problems.join("\n")).toMatch(/filter SANDBOX-EGRESS rule 12/);
  });

  it("reports an extra rule, a wrong policy and a misplaced jump", () => {
    const problems = verifyRuleset(
      tables,
      render((l) =>
        l
          .map((x) => (x === ":OUTPUT DROP [0:0]" ? ":OUTPUT ACCEPT [0:0]" : x))
          .flatMap((x) => (x === "-A OUTPUT -j SANDBOX-EGRESS" ? ["-A OUTPUT -j ACCEPT", x] : [x]))
          .map((x) =>
            x === "-A SANDBOX-EGRESS -o lo -j RETURN" ? `${x}\n-A SANDBOX-EGRESS -j ACCEPT` : x,
          )
          .flatMap((x) => x.split("\n")),
      ),
    );
    expect(problems).toContain("filter OUTPUT policy is ACCEPT, want DROP");
    expect(problems).toContain('filter OUTPUT does not start with "-A OUTPUT -j SANDBOX-EGRESS"');
    expect(problems.some((p) => p.startsWith("nat SANDBOX-EGRESS rule 5"))).toBe(true);
  });

  it("reports a duplicated jump and a missing table", () => {
    const problems = verifyRuleset(
      tables,
      render((l) => l.flatMap((x) => (x === "-A OUTPUT -j SANDBOX-EGRESS" ? [x, x] : [x]))),
    );
    expect(problems).toContain("filter OUTPUT jumps to the lockdown 2 times, want 1");
    expect(verifyRuleset(tables, parseSave(""))).toEqual([
      "table filter is missing",
      "table nat is missing",
    ]);
  });
});
