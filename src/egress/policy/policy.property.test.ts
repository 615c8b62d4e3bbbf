// Property-based tests of the policy parser and matchers against small
// reference implementations written differently (labels instead of suffixes,
// BigInt arithmetic instead of BlockList).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { EgressRule } from "../../api/sandbox-spec.js";
import { CidrSet, parseCidr } from "./address.js";
import { compilePolicy } from "./compile.js";
import { decideAddress, decideName, decideNameAnyPort } from "./decide.js";
import { parseTarget } from "./target.js";

const LETTERS = "abcdefghijklmnopqrstuvwxyz";
const ALNUM = `${LETTERS}0123456789`;

/** A DNS label the CRD accepts: alphanumerics and inner hyphens, 1-63 chars. */
const dnsLabel = fc
  .tuple(
    fc.constantFrom(...ALNUM),
    fc.string({ unit: fc.constantFrom(...`${ALNUM}-`), maxLength: 8 }),
    fc.constantFrom(...ALNUM),
  )
  .map(([a, mid, z]) => (mid.length === 0 ? a : `${a}${mid}${z}`));

/** A lower-case DNS name whose last label has a letter (so it is not numeric). */
const dnsName = fc
  .tuple(fc.array(dnsLabel, { maxLength: 3 }), fc.constantFrom(...LETTERS), dnsLabel)
  .map(([labels, letter, tld]) => [...labels, `${letter}${tld}`.slice(0, 63)].join("."));

/** Flip the case of random ASCII letters. */
function randomCase(name: string, flips: boolean[]): string {
  return [...name]
    .map((ch, i) => (flips[i % Math.max(flips.length, 1)] ? ch.toUpperCase() : ch))
    .join("");
}

const ipv4Bytes = fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 4, maxLength: 4 });
const ipv6Groups = fc.array(fc.integer({ min: 0, max: 0xffff }), {
  minLength: 8,
  maxLength: 8,
});

const ipv4Text = (b: number[]) => b.join(".");
/** Full, uncompressed form: a different spelling than the canonical one on purpose. */
const ipv6Text = (g: number[]) => g.map((x) => x.toString(16)).join(":");

/** Reference: the address as an integer, by plain arithmetic on its parts. */
function ipv4BigInt(b: number[]): bigint {
  return b.reduce((acc, x) => acc * 256n + BigInt(x), 0n);
}
function ipv6BigInt(g: number[]): bigint {
  return g.reduce((acc, x) => acc * 65536n + BigInt(x), 0n);
}

/** Reference CIDR membership: same top `prefix` bits. */
function sameNetwork(a: bigint, b: bigint, prefix: number, width: number): boolean {
  const shift = BigInt(width - prefix);
  return a >> shift === b >> shift;
}

/** Reference name matcher: compares label lists, never string suffixes. */
function referenceNameMatch(target: string, host: string): boolean {
  const hostLabels = host.toLowerCase().replace(/\.$/, "").split(".");
  if (target.startsWith("*.")) {
    const apex = target.slice(2).toLowerCase().replace(/\.$/, "").split(".");
    const tail = hostLabels.slice(hostLabels.length - apex.length);
    return hostLabels.length > apex.length && tail.join(".") === apex.join(".");
  }
  return target.toLowerCase().replace(/\.$/, "") === hostLabels.join(".");
}

/** Reference first-match-wins over raw rules. */
function referenceDecide(
  rules: EgressRule[],
  defaultAction: "allow" | "deny",
  host: string,
  port: number,
) {
  for (const [i, r] of rules.entries()) {
    const portOk = !r.ports || r.ports.length === 0 || r.ports.includes(port);
    if (portOk && referenceNameMatch(r.target, host)) return { verdict: r.action, rule: i };
  }
  return { verdict: defaultAction, rule: "default" };
}

const port = fc.integer({ min: 1, max: 65535 });
const flips = fc.array(fc.boolean(), { minLength: 1, maxLength: 16 });

/** Rules over a small pool of names so that matches (and shadowing) actually happen. */
const namePool = fc.array(dnsName, { minLength: 1, maxLength: 4 });
const ruleOver = (pool: string[]) =>
  fc.record({
    action: fc.constantFrom("allow" as const, "deny" as const),
    target: fc
      .tuple(fc.constantFrom(...pool), fc.boolean(), fc.boolean(), flips)
      .map(
        ([name, wildcard, dot, f]) =>
          `${wildcard ? "*." : ""}${randomCase(name, f)}${dot ? "." : ""}`,
      ),
    ports: fc.option(fc.uniqueArray(fc.constantFrom(80, 443, 8080), { maxLength: 2 }), {
      nil: undefined,
    }),
  });
const hostOver = (pool: string[]) =>
  fc
    .tuple(fc.constantFrom(...pool), fc.array(dnsLabel, { maxLength: 2 }))
    .map(([name, prefix]) => [...prefix, name].join("."));

describe("policy properties", () => {
  it("accepts every well-formed name, wildcard, address and CIDR", () => {
    fc.assert(
      fc.property(
        dnsName,
        ipv4Bytes,
        ipv6Groups,
        fc.integer({ min: 0, max: 32 }),
        (n, v4, v6, p) => {
          expect(parseTarget(n)?.kind).toBe("name");
          expect(parseTarget(`${n}.`)?.kind).toBe("name");
          expect(parseTarget(`*.${n}`)?.kind).toBe("wildcard");
          expect(parseTarget(ipv4Text(v4))?.kind).toBe("address");
          expect(parseTarget(`${ipv4Text(v4)}/${p}`)?.kind).toBe("address");
          // A random IPv6 address is IPv4-mapped with negligible probability.
          expect(parseTarget(`${ipv6Text(v6)}/${p * 4}`)?.kind).toBe("address");
        },
      ),
    );
  });

  it("never throws on arbitrary input, and refuses anything with characters outside the grammar", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (s) => {
        const t = parseTarget(s);
        if (/[^-A-Za-z0-9.:*/]/.test(s)) expect(t).toBeUndefined();
      }),
    );
  });

  it("decisions are invariant under letter case and a trailing dot", () => {
    fc.assert(
      fc.property(
        namePool.chain((pool) =>
          fc.tuple(fc.array(ruleOver(pool), { maxLength: 6 }), hostOver(pool), port, flips),
        ),
        fc.boolean(),
        ([rules, host, p, f], dot) => {
          const policy = compilePolicy({ defaultAction: "deny", rules });
          const variant = `${randomCase(host, f)}${dot ? "." : ""}`;
          expect(decideName(policy, variant, p)).toEqual(decideName(policy, host, p));
        },
      ),
    );
  });

  it("a wildcard never matches its apex, and matches every subdomain depth", () => {
    fc.assert(
      fc.property(
        dnsName,
        fc.array(dnsLabel, { minLength: 1, maxLength: 3 }),
        port,
        (apex, sub, p) => {
          const policy = compilePolicy({
            defaultAction: "deny",
            rules: [{ action: "allow", target: `*.${apex}` }],
          });
          expect(decideName(policy, apex, p)).toEqual({ verdict: "deny", rule: "default" });
          expect(decideName(policy, `${apex}.`, p).rule).toBe("default");
          expect(decideName(policy, `${sub.join(".")}.${apex}`, p)).toEqual({
            verdict: "allow",
            rule: 0,
          });
        },
      ),
    );
  });

  it("first match wins, exactly like the reference", () => {
    fc.assert(
      fc.property(
        namePool.chain((pool) =>
          fc.tuple(
            fc.array(ruleOver(pool), { maxLength: 8 }),
            hostOver(pool),
            fc.constantFrom(80, 443, 8080, 22),
          ),
        ),
        fc.constantFrom("allow" as const, "deny" as const),
        ([rules, host, p], defaultAction) => {
          const policy = compilePolicy({ defaultAction, rules });
          expect(decideName(policy, host, p)).toEqual(
            referenceDecide(rules, defaultAction, host, p),
          );
        },
      ),
      { numRuns: 500 },
    );
  });

  it("a name resolves (DNS) exactly when some port of it is allowed", () => {
    fc.assert(
      fc.property(
        namePool.chain((pool) =>
          fc.tuple(fc.array(ruleOver(pool), { maxLength: 8 }), hostOver(pool)),
        ),
        fc.constantFrom("allow" as const, "deny" as const),
        ([rules, host], defaultAction) => {
          const policy = compilePolicy({ defaultAction, rules });
          // Rules only name 80, 443 and 8080; 22 stands for every other port.
          const somePort = [80, 443, 8080, 22].some(
            (p) => decideName(policy, host, p).verdict === "allow",
          );
          expect(decideNameAnyPort(policy, host).verdict).toBe(somePort ? "allow" : "deny");
        },
      ),
      { numRuns: 500 },
    );
  });

  it("IPv4 CIDR membership agrees with integer arithmetic", () => {
    fc.assert(
      fc.property(ipv4Bytes, ipv4Bytes, fc.integer({ min: 0, max: 32 }), (net, addr, prefix) => {
        const cidr = parseCidr(`${ipv4Text(net)}/${prefix}`)!;
        const expected = sameNetwork(ipv4BigInt(net), ipv4BigInt(addr), prefix, 32);
        expect(new CidrSet([cidr]).has(ipv4Text(addr), 4)).toBe(expected);
        // The masked network address is itself a member, and is what iptables would store.
        expect(new CidrSet([cidr]).has(ipv4Text(net), 4)).toBe(true);
      }),
    );
  });

  it("IPv4 CIDR membership agrees on nearby addresses too (same first bytes)", () => {
    fc.assert(
      fc.property(
        ipv4Bytes,
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 16, max: 32 }),
        (net, last, prefix) => {
          const addr = [net[0]!, net[1]!, net[2]!, last];
          const cidr = parseCidr(`${ipv4Text(net)}/${prefix}`)!;
          const expected = sameNetwork(ipv4BigInt(net), ipv4BigInt(addr), prefix, 32);
          expect(new CidrSet([cidr]).has(ipv4Text(addr), 4)).toBe(expected);
        },
      ),
    );
  });

  it("IPv6 CIDR membership agrees with integer arithmetic, and never matches IPv4", () => {
    fc.assert(
      fc.property(
        ipv6Groups,
        fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }),
        fc.integer({ min: 0, max: 128 }),
        fc.integer({ min: 0, max: 8 }),
        ipv4Bytes,
        (net, other, prefix, keep, v4) => {
          // Share the first `keep` groups so that both outcomes are common.
          const addr = [...net.slice(0, keep), ...other.slice(keep)];
          const cidr = parseCidr(`${ipv6Text(net)}/${prefix}`);
          fc.pre(cidr !== undefined); // IPv4-mapped networks are refused by design
          const set = new CidrSet([cidr!]);
          const expected = sameNetwork(ipv6BigInt(net), ipv6BigInt(addr), prefix, 128);
          expect(set.has(ipv6Text(addr), 6)).toBe(expected);
          expect(set.has(ipv4Text(v4), 4)).toBe(false);
        },
      ),
    );
  });

  it("address rules decide IP literals in order; name rules never do", () => {
    fc.assert(
      fc.property(
        ipv4Bytes,
        fc.integer({ min: 8, max: 32 }),
        dnsName,
        port,
        (addr, prefix, name, p) => {
          const policy = compilePolicy({
            defaultAction: "deny",
            rules: [
              { action: "allow", target: name },
              { action: "deny", target: `${ipv4Text(addr)}/${prefix}`, ports: [p] },
              { action: "allow", target: `${ipv4Text(addr)}/${prefix}` },
            ],
          });
          expect(decideAddress(policy, ipv4Text(addr), p)).toEqual({ verdict: "deny", rule: 1 });
          expect(decideName(policy, `::ffff:${ipv4Text(addr)}`, p)).toEqual({
            verdict: "deny",
            rule: 1,
          });
          const other = p === 65535 ? 1 : p + 1;
          expect(decideAddress(policy, ipv4Text(addr), other)).toEqual({
            verdict: "allow",
            rule: 2,
          });
        },
      ),
    );
  });
});
