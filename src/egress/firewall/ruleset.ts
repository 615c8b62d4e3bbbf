// The lockdown as data: which rules go into which chain of which table, written
// exactly as iptables-save prints them (iptables-nft and iptables-legacy print
// the same text), so verification after apply is a plain comparison.
//
// The lockdown owns one chain per table and one jump at the top of OUTPUT; it
// never flushes a table, so rules others put in the namespace (Docker's
// embedded DNS NAT for 127.0.0.11, for one) keep working.
//
// It holds no policy: every sandbox gets the same firewall, so no policy change
// needs NET_ADMIN. Address rules and defaultAction are judged by the sidecar,
// per connection, from the policy file it follows live (judgeRedirected).

export const CHAIN = "SANDBOX-EGRESS";

export interface ListenPorts {
  dns: number;
  http: number;
  tls: number;
}

export interface LockdownConfig {
  /** The sidecar's UID: the only one whose traffic leaves unjudged by the firewall. */
  sidecarUid: number;
  /** Where the sidecar listens for redirected DNS, TCP 443, and every other TCP flow. */
  ports: ListenPorts;
}

export type TableName = "filter" | "nat";

export interface TableRules {
  table: TableName;
  /** Built-in chain policies the lockdown sets (filter OUTPUT DROP: fail closed). */
  policies: Partial<Record<"OUTPUT", "DROP" | "ACCEPT">>;
  /** The lockdown's own chains and their rules, in order, as iptables-save prints them. */
  chains: Record<string, string[]>;
}

export interface Ruleset {
  ipv4: TableRules[];
  ipv6: TableRules[];
}

const PROHIBITED_V4 = "REJECT --reject-with icmp-admin-prohibited";
const PROHIBITED_V6 = "REJECT --reject-with icmp6-adm-prohibited";

export function buildRuleset(config: LockdownConfig): Ruleset {
  return {
    ipv4: [ipv4Filter(config), ipv4Nat(config)],
    // IPv6 is closed outright: the sidecar resolves and connects over IPv4 only,
    // so there is nothing to redirect, and nothing else may leave.
    ipv6: [
      {
        table: "filter",
        policies: { OUTPUT: "DROP" },
        chains: { [CHAIN]: [`-A ${CHAIN} -o lo -j ACCEPT`, `-A ${CHAIN} -j ${PROHIBITED_V6}`] },
      },
    ],
  };
}

function ipv4Filter({ sidecarUid, ports }: LockdownConfig): TableRules {
  // The invariant (src/egress/README.md): a packet from a socket the sidecar's
  // UID does not own leaves for a non-loopback destination only after nat
  // redirected its flow to the sidecar, or as a reply in a connection opened
  // towards the sandbox. Conntrack's view of a flow is never enough on its own:
  // a workload can send on the 5-tuple of a flow the sidecar opened (bind the
  // port of its closed upstream DNS socket, reuse an ICMP identifier), and such
  // a packet is ESTABLISHED to conntrack and skips the nat redirect, which sees
  // only a flow's first packet. So the UID is checked first, and conntrack only
  // narrows what else may pass.
  const rules = [
    `-A ${CHAIN} -o lo -j ACCEPT`,
    // A packet the nat table redirected still shows its original output
    // interface here (the hook's device is fixed before the reroute), so the
    // redirected traffic is accepted by its new destination: the sidecar's
    // listeners on loopback, and nothing else there.
    `-A ${CHAIN} -d 127.0.0.1/32 -p tcp -m conntrack --ctstate DNAT -m multiport --dports ${ports.dns},${ports.http},${ports.tls} -j ACCEPT`,
    `-A ${CHAIN} -d 127.0.0.1/32 -p udp -m conntrack --ctstate DNAT -m udp --dport ${ports.dns} -j ACCEPT`,
    `-A ${CHAIN} -m owner --uid-owner ${sidecarUid} -j ACCEPT`,
    // Replies in connections opened towards the sandbox (a declared port, a
    // probe): they travel in the flow's reply direction, which no packet of a
    // flow opened from inside (the sidecar's included) ever does.
    `-A ${CHAIN} -m conntrack --ctstate RELATED,ESTABLISHED --ctdir REPLY -j ACCEPT`,
    // Packets the kernel sends on no socket's behalf for a tracked flow (a
    // time-wait ACK, a reset, an ICMP error): no process chose their content.
    `-A ${CHAIN} -m conntrack --ctstate RELATED,ESTABLISHED -m owner ! --socket-exists -j ACCEPT`,
    // Everything else: what nat did not redirect (non-DNS UDP, ICMP, a raw
    // socket's packet, one riding a flow conntrack already tracks).
    `-A ${CHAIN} -j ${PROHIBITED_V4}`,
  ];
  return { table: "filter", policies: { OUTPUT: "DROP" }, chains: { [CHAIN]: rules } };
}

function ipv4Nat({ sidecarUid, ports }: LockdownConfig): TableRules {
  const rules = [
    `-A ${CHAIN} -m owner --uid-owner ${sidecarUid} -j RETURN`,
    // Every DNS query goes to the DNS proxy, whatever server the workload asks,
    // loopback ones included: Docker points resolv.conf at its embedded resolver
    // on 127.0.0.11, which would forward names the policy does not allow.
    `-A ${CHAIN} -p udp -m udp --dport 53 -j REDIRECT --to-ports ${ports.dns}`,
    `-A ${CHAIN} -p tcp -m tcp --dport 53 -j REDIRECT --to-ports ${ports.dns}`,
    `-A ${CHAIN} -o lo -j RETURN`,
    // 443 to the SNI listener; every other TCP flow to the transparent listener,
    // which recovers the original destination (SO_ORIGINAL_DST) and judges port
    // 80 by Host and any other port by address rules and defaultAction.
    `-A ${CHAIN} -p tcp -m tcp --dport 443 -j REDIRECT --to-ports ${ports.tls}`,
    `-A ${CHAIN} -p tcp -j REDIRECT --to-ports ${ports.http}`,
  ];
  return { table: "nat", policies: {}, chains: { [CHAIN]: rules } };
}
