// Example-based tests of the policy: the CRD's admission corpus (what the
// apiserver accepts must compile, what it refuses for a target must not), error
// paths, and the destination judgement with its DNS-rebinding defense.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import type { EgressPolicy } from "../../api/sandbox-spec.js";
import { parseCidr } from "./address.js";
import { compilePolicy, parsePolicy } from "./compile.js";
import { decideAddress, decideName } from "./decide.js";
import { judgeDestination } from "./destination.js";
import { EgressPolicyError } from "./errors.js";
import { reservedRanges } from "./reserved-ranges.js";
import { parseTarget } from "./target.js";

interface CorpusCase {
  name: string;
  spec: { network?: { egress?: unknown } } | null;
  field?: string;
}
const corpus = (file: string): CorpusCase[] =>
  parse(
    readFileSync(
      fileURLToPath(new URL(`../../../test/admission/corpus/${file}`, import.meta.url)),
      "utf8",
    ),
  );

function compileError(policy: unknown): EgressPolicyError {
  try {
    parsePolicy(policy);
  } catch (err) {
    if (err instanceof EgressPolicyError) return err;
    throw err;
  }
  throw new Error("policy compiled but should not have");
}

describe("agreement with the CRD's admission corpus", () => {
  const withEgress = (c: CorpusCase) => c.spec?.network?.egress !== undefined;

  it.each(corpus("valid.yaml").filter(withEgress))("compiles valid case: $name", (c) => {
    expect(() => parsePolicy(c.spec!.network!.egress)).not.toThrow();
  });

  const invalid = corpus("invalid.yaml").filter(
    (c) => withEgress(c) && c.field?.startsWith("spec.network.egress.rules"),
  );
  it.each(invalid)("refuses invalid case naming the field: $name", (c) => {
    const err = compileError(c.spec!.network!.egress);
    expect(`spec.network.egress.${err.field}`).toBe(c.field);
  });

  it("the corpus exercises target parsing", () => {
    expect(invalid.filter((c) => c.field?.endsWith(".target")).length).toBeGreaterThan(4);
  });
});

describe("target parsing", () => {
  it.each([
    ["api.example.com", "name"],
    ["Pypi.ORG.", "name"],
    ["*.example.org", "wildcard"],
    ["*.Example.org.", "wildcard"],
    ["xn--bcher-kva.example", "name"],
    ["1.2.3.4", "address"],
    ["2001:db8::1", "address"],
    ["::1.2.3.4", "address"],
    ["10.20.1.2/16", "address"],
    ["::/0", "address"],
  ])("accepts %s as %s", (raw, kind) => {
    expect(parseTarget(raw)?.kind).toBe(kind);
  });

  it.each([
    "*",
    "*.",
    "**.example.org",
    "a.*.example.org",
    "*.1.2.3.4",
    "1.2.3.999",
    "01.2.3.4",
    "1.2.3",
    "::ffff:1.2.3.4",
    "fe80::1%eth0",
    "10.0.0.0/33",
    "10.0.0.0/08",
    "10.0.0.0/",
    "example.org/24",
    "-a.example.org",
    "a-.example.org",
    "a..example.org",
    "example.org..",
    "under_score.example.org",
    "https://example.org",
    "example.org:443",
    `${"a".repeat(64)}.example.org`,
    `${"abcdefghi.".repeat(25)}comm`,
  ])("refuses %s", (raw) => {
    expect(parseTarget(raw)).toBeUndefined();
  });

  it("masks host bits off a CIDR, as iptables does", () => {
    expect(parseCidr("10.20.1.2/16")).toEqual({ network: "10.20.0.0", prefix: 16, family: 4 });
    expect(parseCidr("2001:db8::1/32")).toEqual({ network: "2001:db8::", prefix: 32, family: 6 });
  });
});

describe("errors", () => {
  it("names the rule and the field", () => {
    const err = compileError({
      rules: [
        { action: "allow", target: "ok.example" },
        { action: "deny", target: "bad_name!" },
      ],
    });
    expect(err.field).toBe("rules[1].target");
    expect(err.ruleIndex).toBe(1);
    expect(err.message).toBe(
      'rules[1].target: "bad_name!" is not a DNS name, a "*." wildcard, an IP address or a CIDR',
    );
  });

  it("reports schema problems with their path", () => {
    expect(compileError({ rules: [{ action: "maybe", target: "x.example" }] }).field).toBe(
      "rules[0].action",
    );
    expect(
      compileError({ rules: [{ action: "allow", target: "x.example", ports: [0] }] }).field,
    ).toBe("rules[0].ports[0]");
    expect(compileError({ defaultAction: "perhaps" }).field).toBe("defaultAction");
  });

  it("refuses duplicate ports, as the CRD's set semantics do", () => {
    const err = compileError({
      rules: [{ action: "allow", target: "x.example", ports: [443, 443] }],
    });
    expect(err.field).toBe("rules[0].ports[1]");
  });

  it("defaults to deny", () => {
    expect(parsePolicy({}).defaultAction).toBe("deny");
  });
});

describe("decisions", () => {
  const policy = compilePolicy({
    defaultAction: "deny",
    rules: [
      { action: "deny", target: "secret.example.org" },
      { action: "allow", target: "*.example.org" },
      { action: "allow", target: "api.example.com", ports: [443] },
      { action: "allow", target: "10.20.0.0/16", ports: [5432] },
      { action: "deny", target: "2001:db8::/32" },
    ],
  });

  it.each([
    ["secret.example.org", 443, "deny", 0],
    ["a.secret.example.org", 443, "allow", 1],
    ["SECRET.example.org.", 80, "deny", 0],
    ["x.y.example.org", 80, "allow", 1],
    ["example.org", 443, "deny", "default"],
    ["api.example.com", 443, "allow", 2],
    ["api.example.com", 80, "deny", "default"],
    ["10.20.3.4", 5432, "allow", 3],
    ["10.20.3.4", 80, "deny", "default"],
    ["[2001:db8::5]", 443, "deny", 4],
  ] as const)("%s:%d -> %s by %s", (host, port, verdict, rule) => {
    expect(decideName(policy, host, port)).toEqual({ verdict, rule });
  });

  it("treats an empty port list as every port", () => {
    const p = compilePolicy({
      defaultAction: "deny",
      rules: [{ action: "allow", target: "x.example", ports: [] }],
    });
    expect(decideName(p, "x.example", 1).verdict).toBe("allow");
  });

  it("refuses to judge non-addresses as addresses", () => {
    expect(() => decideAddress(policy, "example.org", 1)).toThrow(TypeError);
  });
});

describe("destination judgement (DNS-rebinding defense)", () => {
  const reserved = reservedRanges();
  const judge = (policy: EgressPolicy, dest: Parameters<typeof judgeDestination>[2]) =>
    judgeDestination(compilePolicy(policy), reserved, dest);
  const allowApi: EgressPolicy = {
    defaultAction: "deny",
    rules: [{ action: "allow", target: "api.example.com" }],
  };

  it("allows an allowed name at a public address", () => {
    expect(judge(allowApi, { name: "api.example.com", address: "203.0.113.7", port: 443 })).toEqual(
      {
        verdict: "allow",
        rule: 0,
      },
    );
  });

  it.each([
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",
    "127.0.0.1",
    "169.254.169.254",
    "::1",
    "fe80::1",
    "fd00:ec2::254",
    "::ffff:169.254.169.254",
  ])("refuses an allowed name resolving to reserved %s", (address) => {
    expect(judge(allowApi, { name: "api.example.com", address, port: 443 })).toEqual({
      verdict: "deny",
      rule: "reserved-address",
    });
  });

  it("lets an explicit address rule allow a reserved address", () => {
    const policy: EgressPolicy = {
      defaultAction: "deny",
      rules: [...allowApi.rules!, { action: "allow", target: "10.0.0.0/8", ports: [443] }],
    };
    expect(judge(policy, { name: "api.example.com", address: "10.1.2.3", port: 443 })).toEqual({
      verdict: "allow",
      rule: 1,
    });
    expect(judge(policy, { name: "api.example.com", address: "10.1.2.3", port: 80 }).rule).toBe(
      "reserved-address",
    );
  });

  it("lets an address deny rule override an allowed name", () => {
    const policy: EgressPolicy = {
      defaultAction: "deny",
      rules: [...allowApi.rules!, { action: "deny", target: "203.0.113.0/24" }],
    };
    expect(judge(policy, { name: "api.example.com", address: "203.0.113.7", port: 443 })).toEqual({
      verdict: "deny",
      rule: 1,
    });
  });

  it("still refuses reserved IP literals under defaultAction allow", () => {
    const open: EgressPolicy = { defaultAction: "allow" };
    expect(judge(open, { address: "169.254.169.254", port: 80 }).rule).toBe("reserved-address");
    expect(judge(open, { address: "203.0.113.1", port: 80 })).toEqual({
      verdict: "allow",
      rule: "default",
    });
  });

  it("refuses a denied name whatever its address", () => {
    expect(judge(allowApi, { name: "evil.example", address: "203.0.113.7", port: 443 })).toEqual({
      verdict: "deny",
      rule: "default",
    });
  });

  it("the reserved set is configurable", () => {
    const none = reservedRanges([]);
    expect(
      judgeDestination(compilePolicy(allowApi), none, {
        name: "api.example.com",
        address: "10.0.0.1",
        port: 1,
      }).verdict,
    ).toBe("allow");
    expect(() => reservedRanges(["nope"])).toThrow(/not a CIDR/);
  });
});
