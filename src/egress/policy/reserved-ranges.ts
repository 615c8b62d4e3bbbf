// Addresses that are not "the internet": a name that resolves into one of these
// (DNS rebinding, a hostile or misconfigured zone) or an IP literal inside one is
// refused unless an address rule explicitly allows it. This is what keeps the
// cloud metadata service, the node, and cluster-internal services out of reach
// of an "allow *.example.com" policy.
import { type Cidr, CidrSet, parseCidr } from "./address.js";

export const DEFAULT_RESERVED_RANGES: readonly string[] = [
  "0.0.0.0/8", // "this network"; 0.0.0.0 reaches the local host on Linux
  "10.0.0.0/8", // RFC 1918
  "172.16.0.0/12", // RFC 1918
  "192.168.0.0/16", // RFC 1918
  "100.64.0.0/10", // CGNAT (RFC 6598), also used by some cluster networks
  "127.0.0.0/8", // loopback
  "169.254.0.0/16", // link-local, including metadata at 169.254.169.254
  "224.0.0.0/4", // multicast
  "240.0.0.0/4", // reserved, and 255.255.255.255 broadcast
  "::/128", // unspecified
  "::1/128", // loopback
  "fe80::/10", // link-local
  "fc00::/7", // unique-local, including the EC2 metadata address fd00:ec2::254
  "ff00::/8", // multicast
];

/** Build the reserved set; throws on an entry that is not a CIDR. */
export function reservedRanges(cidrs: readonly string[] = DEFAULT_RESERVED_RANGES): CidrSet {
  return new CidrSet(
    cidrs.map((text): Cidr => {
      const cidr = parseCidr(text);
      if (!cidr) throw new Error(`reserved range ${JSON.stringify(text)} is not a CIDR`);
      return cidr;
    }),
  );
}
