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
)

const (
	Chain = "SANDBOX-EGRESS"

	prohibitedV4 = "REJECT --reject-with icmp-admin-prohibited"
	prohibitedV6 = "REJECT --reject-with icmp6-adm-prohibited"
)

type ListenPorts struct{ DNS, HTTP, TLS int }

// Config is everything the lockdown depends on. It holds no policy: the
// firewall is the same for every sandbox, so a policy change never needs
// NET_ADMIN (the sidecar judges every connection by the current policy file).
type Config struct {
	SidecarUID int
	Ports      ListenPorts
	// Controller, when valid, is the policy endpoint (IPv4): only the
	// sidecar's UID reaches it. Every other UID's TCP is redirected to the
	// sidecar anyway (which refuses to dial the endpoint for the workload);
	// this rule keeps that true should a packet ever reach filter unredirected.
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
	// leaves for a non-loopback destination only after nat redirected its flow
	// to the sidecar, or as a reply in a connection opened towards the sandbox.
	// Conntrack's view of a flow is never enough on its own (a workload can send
	// on the 5-tuple of a flow the sidecar opened), so the owner is checked
	// first and conntrack only narrows what else may pass. No rule depends on
	// the policy: address rules and defaultAction are the sidecar's judgement.
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
		r = append(r, fmt.Sprintf("-A %s -d %s/32 -p tcp -m tcp --dport %d -j %s", Chain, c.Controller.Addr(), c.Controller.Port(), prohibitedV4))
	}
	r = append(r,
		// Replies in connections opened towards the sandbox (a declared port, a probe).
		"-A "+Chain+" -m conntrack --ctstate RELATED,ESTABLISHED --ctdir REPLY -j ACCEPT",
		// Packets the kernel sends on no socket's behalf for a tracked flow.
		"-A "+Chain+" -m conntrack --ctstate RELATED,ESTABLISHED -m owner ! --socket-exists -j ACCEPT",
		// Everything else: a packet nat did not redirect (non-DNS UDP, ICMP, a
		// raw socket's, one riding a flow conntrack already tracks).
		"-A "+Chain+" -j "+prohibitedV4,
	)
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
		// 443 to the SNI listener; every other TCP flow to the transparent
		// listener, which recovers the original destination (SO_ORIGINAL_DST)
		// and judges port 80 by Host, any other port by address rules and
		// defaultAction, from the policy file it follows live.
		fmt.Sprintf("-A %s -p tcp -m tcp --dport 443 -j REDIRECT --to-ports %d", Chain, p.TLS),
		fmt.Sprintf("-A %s -p tcp -j REDIRECT --to-ports %d", Chain, p.HTTP),
	}
	return Table{Name: "nat", Policies: map[string]string{}, Chains: []ChainRules{{Chain, r}}}
}
