// IP literals and CIDRs. Parsing mirrors the Kubernetes CEL library (isIP /
// isCIDR, i.e. Go's netip): no zone ("fe80::1%eth0"), no IPv4-mapped IPv6
// ("::ffff:1.2.3.4"), no leading zeros, prefix bits in range without leading
// zeros. Host bits in a CIDR are allowed, as netip allows them; the canonical
// form masks them off, which is also what iptables stores.
import { BlockList, isIP } from "node:net";
import ipaddr from "ipaddr.js";

export type IpFamily = 4 | 6;

export interface Cidr {
  /** Network address with host bits cleared, in canonical text form. */
  readonly network: string;
  readonly prefix: number;
  readonly family: IpFamily;
}

/** "10.20.0.0/16"; a single address keeps its full-length prefix ("192.0.2.1/32"). */
export function formatCidr(cidr: Cidr): string {
  return `${cidr.network}/${cidr.prefix}`;
}

/** Parse an IP literal as the CRD accepts it, or undefined. */
export function parseIpLiteral(raw: string): { address: string; family: IpFamily } | undefined {
  const family = ipFamily(raw);
  if (family === undefined || raw.includes("%")) return undefined;
  const parsed = parseValidIp(raw, family);
  if (parsed.kind() === "ipv6" && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) return undefined;
  return { address: parsed.toString(), family };
}

function ipFamily(text: string): IpFamily | undefined {
  const family = isIP(text);
  return family === 4 || family === 6 ? family : undefined;
}

/**
 * ipaddr.js misreads an embedded dotted quad after "::" ("::1.2.3.4" comes out
 * as "::ffff:1.2.3.4"), so the quad is rewritten as two hex groups first.
 * `text` must already be known valid (net.isIP).
 */
function parseValidIp(text: string, family: IpFamily): ipaddr.IPv4 | ipaddr.IPv6 {
  if (family === 4) return ipaddr.IPv4.parse(text);
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (!quad) return ipaddr.IPv6.parse(text);
  const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
  const hex = `${(a * 256 + b).toString(16)}:${(c * 256 + d).toString(16)}`;
  return ipaddr.IPv6.parse(text.slice(0, quad.index) + hex);
}

/** Parse a CIDR as the CRD accepts it, or undefined. */
export function parseCidr(raw: string): Cidr | undefined {
  const slash = raw.indexOf("/");
  if (slash < 0) return undefined;
  const literal = parseIpLiteral(raw.slice(0, slash));
  const bitsText = raw.slice(slash + 1);
  if (!literal || !/^(0|[1-9][0-9]{0,2})$/.test(bitsText)) return undefined;
  const prefix = Number(bitsText);
  if (prefix > (literal.family === 4 ? 32 : 128)) return undefined;
  // literal.address is canonical (no dotted quad), safe for ipaddr.js.
  const network =
    literal.family === 4
      ? ipaddr.IPv4.networkAddressFromCIDR(`${literal.address}/${prefix}`)
      : ipaddr.IPv6.networkAddressFromCIDR(`${literal.address}/${prefix}`);
  return { network: network.toString(), prefix, family: literal.family };
}

/** A single address as the CIDR that holds only it. */
export function hostCidr(address: string, family: IpFamily): Cidr {
  return { network: address, prefix: family === 4 ? 32 : 128, family };
}

/**
 * Canonical form of an address met at run time (a socket's peer, a Host header,
 * a DNS answer): brackets and zone dropped, IPv4-mapped IPv6 turned into IPv4 so
 * "::ffff:10.0.0.1" is judged exactly like "10.0.0.1". Undefined if not an IP.
 */
export function normalizeAddress(raw: string): { address: string; family: IpFamily } | undefined {
  let text = raw.startsWith("[") && raw.endsWith("]") ? raw.slice(1, -1) : raw;
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  const family = ipFamily(text);
  if (family === undefined) return undefined;
  const parsed = parseValidIp(text, family);
  if (parsed.kind() === "ipv6" && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
    return { address: (parsed as ipaddr.IPv6).toIPv4Address().toString(), family: 4 };
  }
  return { address: parsed.toString(), family };
}

/**
 * Membership test for a set of CIDRs, backed by node's BlockList. BlockList on
 * its own lets an IPv6 subnet such as "::/0" match IPv4 addresses; here a CIDR
 * only ever matches addresses of its own family.
 */
export class CidrSet {
  private readonly v4 = new BlockList();
  private readonly v6 = new BlockList();
  private readonly members: Cidr[] = [];

  constructor(cidrs: Iterable<Cidr> = []) {
    for (const c of cidrs) this.add(c);
  }

  add(cidr: Cidr): void {
    if (cidr.family === 4) this.v4.addSubnet(cidr.network, cidr.prefix, "ipv4");
    else this.v6.addSubnet(cidr.network, cidr.prefix, "ipv6");
    this.members.push(cidr);
  }

  /** `address` must be normalized (see normalizeAddress). */
  has(address: string, family: IpFamily): boolean {
    return family === 4 ? this.v4.check(address, "ipv4") : this.v6.check(address, "ipv6");
  }

  get cidrs(): readonly Cidr[] {
    return this.members;
  }
}
