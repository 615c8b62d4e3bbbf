// Package lockdown is the fail-closed firewall (`egress-init`): iptables and
// ip6tables rules that send the workload's traffic through the sidecar or
// nowhere, applied atomically with iptables-restore, read back with
// iptables-save and compared line by line. The rules are written exactly as
// iptables-save prints them (nft and legacy print the same text), so
// verification is a plain comparison. See src/egress/README.md for the
// invariant; test/vectors/egress-lockdown.json pins the rules to the
// TypeScript lockdown's.
package lockdown

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"sandboxing.dev/sandbox-egress/internal/policy"
)

const (
	Chain = "SANDBOX-EGRESS"
	// DirectChain (nat) decides whether TCP 80/443 to an allowed address rule
	// skips the transparent proxy.
	DirectChain = "SANDBOX-EGRESS-DIRECT"

	multiportMax = 15
	prohibitedV4 = "REJECT --reject-with icmp-admin-prohibited"
	prohibitedV6 = "REJECT --reject-with icmp6-adm-prohibited"
)

var transparentPorts = []int{80, 443}

type ListenPorts struct{ DNS, HTTP, TLS int }

type Config struct {
	Policy     *policy.Policy
	SidecarUID int
	Ports      ListenPorts
	Reserved   *policy.CIDRSet
	// Controller, when valid, is the policy endpoint (IPv4): only the
	// sidecar's UID reaches it, whatever the policy's address rules say.
	Controller netip.AddrPort
}

// Table is one table's share of the lockdown.
type Table struct {
	Name string `json:"table"`
	// Policies are built-in chain policies the lockdown sets (filter OUTPUT DROP).
	Policies map[string]string `json:"policies"`
	// Chains are the lockdown's own chains, in order of declaration.
	Chains []ChainRules `json:"chains"`
}

type ChainRules struct {
	Name  string   `json:"name"`
	Rules []string `json:"rules"`
}

type Ruleset struct {
	IPv4 []Table `json:"ipv4"`
	IPv6 []Table `json:"ipv6"`
}

func Build(c Config) Ruleset {
	return Ruleset{
		IPv4: []Table{ipv4Filter(c), ipv4Nat(c)},
		// IPv6 is closed outright: the sidecar resolves and connects over IPv4
		// only, so there is nothing to redirect and nothing else may leave.
		IPv6: []Table{{
			Name:     "filter",
			Policies: map[string]string{"OUTPUT": "DROP"},
			Chains: []ChainRules{{Chain, []string{
				"-A " + Chain + " -o lo -j ACCEPT",
				"-A " + Chain + " -j " + prohibitedV6,
			}}},
		}},
	}
}

func ipv4Filter(c Config) Table {
	// The invariant: a packet from a socket the sidecar's UID does not own
	// leaves for a non-loopback destination only as a reply in a connection
	// opened towards the sandbox, or under an address rule's verdict.
	// Conntrack's view of a flow is never enough on its own (a workload can send
	// on the 5-tuple of a flow the sidecar opened), so the owner is checked
	// first and conntrack only narrows what else may pass.
	p := c.Ports
	r := []string{
		"-A " + Chain + " -o lo -j ACCEPT",
		// A redirected packet still shows its original output interface here,
		// so it is accepted by its new destination: the sidecar's listeners.
		fmt.Sprintf("-A %s -d 127.0.0.1/32 -p tcp -m conntrack --ctstate DNAT -m multiport --dports %d,%d,%d -j ACCEPT", Chain, p.DNS, p.HTTP, p.TLS),
		fmt.Sprintf("-A %s -d 127.0.0.1/32 -p udp -m conntrack --ctstate DNAT -m udp --dport %d -j ACCEPT", Chain, p.DNS),
		fmt.Sprintf("-A %s -m owner --uid-owner %d -j ACCEPT", Chain, c.SidecarUID),
	}
	if c.Controller.IsValid() && c.Controller.Addr().Is4() {
		// The policy endpoint: the sidecar's UID was let out just above; nobody
		// else reaches it, before any rule of the policy (or a conntrack state)
		// could let them.
		r = append(r, fmt.Sprintf("-A %s -d %s/32 -p tcp -m tcp --dport %d -j %s", Chain, c.Controller.Addr(), c.Controller.Port(), prohibitedV4))
	}
	r = append(r,
		// Replies in connections opened towards the sandbox (a declared port, a probe).
		"-A "+Chain+" -m conntrack --ctstate RELATED,ESTABLISHED --ctdir REPLY -j ACCEPT",
		// Packets the kernel sends on no socket's behalf for a tracked flow.
		"-A "+Chain+" -m conntrack --ctstate RELATED,ESTABLISHED -m owner ! --socket-exists -j ACCEPT",
		// DNS leaves only through the sidecar: one reaching here rides somebody else's flow.
		"-A "+Chain+" -p udp -m udp --dport 53 -j "+prohibitedV4,
		"-A "+Chain+" -p tcp -m tcp --dport 53 -j "+prohibitedV4,
	)
	for _, rule := range ipv4AddressRules(c.Policy) {
		verdict := prohibitedV4
		if rule.Action == policy.Allow {
			verdict = "ACCEPT"
		}
		cidr := policy.FormatCIDR(rule.Target.Prefix)
		if rule.PortList == nil {
			r = append(r, fmt.Sprintf("-A %s -d %s -j %s", Chain, cidr, verdict))
			continue
		}
		for _, proto := range []string{"tcp", "udp"} {
			for _, ports := range chunks(rule.PortList, multiportMax) {
				r = append(r, fmt.Sprintf("-A %s -d %s -p %s -m multiport --dports %s -j %s", Chain, cidr, proto, join(ports), verdict))
			}
		}
	}
	if c.Policy.DefaultAction == policy.Allow {
		// Direct traffic nothing matched follows defaultAction, except to
		// reserved ranges, which only an explicit rule opens.
		for _, pre := range c.Reserved.Prefixes() {
			if pre.Addr().Is4() {
				r = append(r, fmt.Sprintf("-A %s -d %s -j %s", Chain, policy.FormatCIDR(pre), prohibitedV4))
			}
		}
		// 80/443 that no address rule let through directly was redirected when
		// its flow began; what reaches here unredirected would skip Host/SNI.
		r = append(r, fmt.Sprintf("-A %s -p tcp -m multiport --dports %s -j %s", Chain, join(transparentPorts), prohibitedV4))
		r = append(r, "-A "+Chain+" -j ACCEPT")
	} else {
		r = append(r, "-A "+Chain+" -j "+prohibitedV4)
	}
	return Table{Name: "filter", Policies: map[string]string{"OUTPUT": "DROP"}, Chains: []ChainRules{{Chain, r}}}
}

func ipv4Nat(c Config) Table {
	p := c.Ports
	r := []string{
		fmt.Sprintf("-A %s -m owner --uid-owner %d -j RETURN", Chain, c.SidecarUID),
		// Every DNS query goes to the DNS proxy, whatever server the workload
		// asks, loopback ones included (Docker's embedded resolver on 127.0.0.11).
		fmt.Sprintf("-A %s -p udp -m udp --dport 53 -j REDIRECT --to-ports %d", Chain, p.DNS),
		fmt.Sprintf("-A %s -p tcp -m tcp --dport 53 -j REDIRECT --to-ports %d", Chain, p.DNS),
		"-A " + Chain + " -o lo -j RETURN",
		"-A " + Chain + " -p tcp -m multiport --dports 80,443 -j " + DirectChain,
		fmt.Sprintf("-A %s -p tcp -m tcp --dport 80 -j REDIRECT --to-ports %d", Chain, p.HTTP),
		fmt.Sprintf("-A %s -p tcp -m tcp --dport 443 -j REDIRECT --to-ports %d", Chain, p.TLS),
	}
	// An address rule allowing 80/443 means "reach this address directly": it
	// skips the redirect. A deny rule that comes first returns to the redirect,
	// so the transparent proxy judges by Host/SNI.
	direct := []string{}
	for _, rule := range ipv4AddressRules(c.Policy) {
		var web []int
		for _, port := range transparentPorts {
			if rule.Ports == nil || rule.Ports[port] {
				web = append(web, port)
			}
		}
		if len(web) == 0 {
			continue
		}
		verdict := "RETURN"
		if rule.Action == policy.Allow {
			verdict = "ACCEPT"
		}
		direct = append(direct, fmt.Sprintf("-A %s -d %s -p tcp -m multiport --dports %s -j %s", DirectChain, policy.FormatCIDR(rule.Target.Prefix), join(web), verdict))
	}
	return Table{Name: "nat", Policies: map[string]string{}, Chains: []ChainRules{{Chain, r}, {DirectChain, direct}}}
}

// ipv4AddressRules are the policy's IPv4 address rules, in policy order.
func ipv4AddressRules(p *policy.Policy) []policy.Rule {
	var out []policy.Rule
	for _, r := range p.Rules {
		if r.Target.Kind == policy.TargetAddress && r.Target.Prefix.Addr().Is4() {
			out = append(out, r)
		}
	}
	return out
}

func chunks(items []int, size int) [][]int {
	var out [][]int
	for i := 0; i < len(items); i += size {
		out = append(out, items[i:min(i+size, len(items))])
	}
	return out
}

func join(ports []int) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}
