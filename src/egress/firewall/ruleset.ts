// The lockdown as data: which rules go into which chain of which table, written
// exactly as iptables-save prints them (iptables-nft and iptables-legacy print
// the same text), so verification after apply is a plain comparison.
//
// The lockdown owns two chains per table and one jump at the top of OUTPUT; it
// never flushes a table, so rules others put in the namespace (Docker's
// embedded DNS NAT for 127.0.0.11, for one) keep working.
import { type CidrSet, type CompiledPolicy, formatCidr } from "../policy/index.js";

export const CHAIN = "SANDBOX-EGRESS";
/** nat: decides whether TCP 80/443 to an allowed address rule skips the transparent proxy. */
export const DIRECT_CHAIN = "SANDBOX-EGRESS-DIRECT";

export interface ListenPorts {
  dns: number;
  http: number;
  tls: number;
}

export interface LockdownConfig {
  policy: CompiledPolicy;
  /** The sidecar's UID: the only one whose traffic leaves unjudged by the firewall. */
  sidecarUid: number;
  /** Where the sidecar listens for redirected DNS, port 80 and port 443 traffic. */
  ports: ListenPorts;
  /** Refused even under defaultAction allow unless an address rule allows them. */
  reserved: CidrSet;
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

/** multiport takes at most 15 ports per rule. */
const MULTIPORT_MAX = 15;
const PROHIBITED_V4 = "REJECT --reject-with icmp-admin-prohibited";
const PROHIBITED_V6 = "REJECT --reject-with icmp6-adm-prohibited";
const TRANSPARENT_PORTS = [80, 443] as const;

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

function ipv4Filter({ policy, sidecarUid, reserved, ports }: LockdownConfig): TableRules {
  // The invariant (src/egress/README.md): a packet from a socket the sidecar's
  // UID does not own leaves for a non-loopback destination only as a reply in a
  // connection opened towards the sandbox, or under an address rule's verdict.
  // Conntrack's view of a flow is never enough on its own: a workload can send
  // on the 5-tuple of a flow the sidecar opened (bind the port of its closed
  // upstream DNS socket, reuse an ICMP identifier), and such a packet is
  // ESTABLISHED to conntrack and skips the nat redirect, which sees only a
  // flow's first packet. So the UID is checked first, and conntrack only
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
    // DNS leaves only through the sidecar: nat redirects every new flow to
    // port 53, so one that reaches this point rides somebody else's flow.
    `-A ${CHAIN} -p udp -m udp --dport 53 -j ${PROHIBITED_V4}`,
    `-A ${CHAIN} -p tcp -m tcp --dport 53 -j ${PROHIBITED_V4}`,
  ];
  for (const rule of ipv4AddressRules(policy)) {
    const verdict = rule.action === "allow" ? "ACCEPT" : PROHIBITED_V4;
    if (!rule.ports) {
      rules.push(`-A ${CHAIN} -d ${rule.cidr} -j ${verdict}`);
      continue;
    }
    for (const proto of ["tcp", "udp"]) {
      for (const ports of chunks(rule.ports, MULTIPORT_MAX)) {
        rules.push(
          `-A ${CHAIN} -d ${rule.cidr} -p ${proto} -m multiport --dports ${ports.join(",")} -j ${verdict}`,
        );
      }
    }
  }
  if (policy.defaultAction === "allow") {
    // Direct traffic nothing matched follows defaultAction, except to reserved
    // ranges (metadata, cluster, node), which only an explicit rule opens.
    for (const cidr of reserved.cidrs.filter((c) => c.family === 4)) {
      rules.push(`-A ${CHAIN} -d ${formatCidr(cidr)} -j ${PROHIBITED_V4}`);
    }
    // 80/443 that no address rule let through directly was redirected to the
    // transparent proxies when its flow began; what reaches here unredirected
    // would skip the Host/SNI judgement.
    rules.push(
      `-A ${CHAIN} -p tcp -m multiport --dports ${TRANSPARENT_PORTS.join(",")} -j ${PROHIBITED_V4}`,
    );
    rules.push(`-A ${CHAIN} -j ACCEPT`);
  } else {
    rules.push(`-A ${CHAIN} -j ${PROHIBITED_V4}`);
  }
  return { table: "filter", policies: { OUTPUT: "DROP" }, chains: { [CHAIN]: rules } };
}

function ipv4Nat({ policy, sidecarUid, ports }: LockdownConfig): TableRules {
  const rules = [
    `-A ${CHAIN} -m owner --uid-owner ${sidecarUid} -j RETURN`,
    // Every DNS query goes to the DNS proxy, whatever server the workload asks,
    // loopback ones included: Docker points resolv.conf at its embedded resolver
    // on 127.0.0.11, which would forward names the policy does not allow.
    `-A ${CHAIN} -p udp -m udp --dport 53 -j REDIRECT --to-ports ${ports.dns}`,
    `-A ${CHAIN} -p tcp -m tcp --dport 53 -j REDIRECT --to-ports ${ports.dns}`,
    `-A ${CHAIN} -o lo -j RETURN`,
    `-A ${CHAIN} -p tcp -m multiport --dports 80,443 -j ${DIRECT_CHAIN}`,
    `-A ${CHAIN} -p tcp -m tcp --dport 80 -j REDIRECT --to-ports ${ports.http}`,
    `-A ${CHAIN} -p tcp -m tcp --dport 443 -j REDIRECT --to-ports ${ports.tls}`,
  ];
  // An address rule allowing 80/443 means "reach this address directly": its
  // traffic skips the redirect (ACCEPT ends nat processing) and the filter table
  // accepts it. A deny rule that comes first returns to the redirect, so the
  // transparent proxy judges by Host/SNI and connects to the name's own address.
  const direct: string[] = [];
  for (const rule of ipv4AddressRules(policy)) {
    const web = TRANSPARENT_PORTS.filter((p) => !rule.ports || rule.ports.includes(p));
    if (web.length === 0) continue;
    const verdict = rule.action === "allow" ? "ACCEPT" : "RETURN";
    direct.push(
      `-A ${DIRECT_CHAIN} -d ${rule.cidr} -p tcp -m multiport --dports ${web.join(",")} -j ${verdict}`,
    );
  }
  return { table: "nat", policies: {}, chains: { [CHAIN]: rules, [DIRECT_CHAIN]: direct } };
}

interface AddressRule {
  action: "allow" | "deny";
  cidr: string;
  ports?: number[];
}

/** The policy's IPv4 address rules, in policy order (order is first-match-wins). */
function ipv4AddressRules(policy: CompiledPolicy): AddressRule[] {
  const out: AddressRule[] = [];
  for (const rule of policy.rules) {
    if (rule.target.kind !== "address" || rule.target.cidr.family !== 4) continue;
    out.push({
      action: rule.action,
      cidr: formatCidr(rule.target.cidr),
      ...(rule.ports ? { ports: [...rule.ports] } : {}),
    });
  }
  return out;
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
