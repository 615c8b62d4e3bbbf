package lockdown

import (
	"net/netip"
	"strings"
	"testing"

	"sandboxing.dev/sandbox-egress/internal/policy"
)

// The policy endpoint is refused to every UID but the sidecar's, before any
// of the policy's rules: even an address rule opening its range (or
// defaultAction allow) lets no workload reach it.
func TestControllerEndpointOnlyForTheSidecar(t *testing.T) {
	p, err := policy.FromText([]byte(`{"defaultAction":"allow","rules":[{"action":"allow","target":"10.0.0.0/8"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	reserved, _ := policy.ReservedRanges(nil)
	rs := Build(Config{Policy: p, SidecarUID: 1337, Reserved: reserved, Ports: ListenPorts{15053, 15080, 15443}, Controller: netip.MustParseAddrPort("10.213.5.1:15090")})
	rules := rs.IPv4[0].Chains[0].Rules
	owner, refuse, allowRange := -1, -1, -1
	for i, r := range rules {
		switch {
		case strings.Contains(r, "--uid-owner 1337 -j ACCEPT"):
			owner = i
		case r == "-A SANDBOX-EGRESS -d 10.213.5.1/32 -p tcp -m tcp --dport 15090 -j "+prohibitedV4:
			refuse = i
		case strings.Contains(r, "-d 10.0.0.0/8 -j ACCEPT"):
			allowRange = i
		}
	}
	if owner < 0 || refuse != owner+1 || allowRange < refuse {
		t.Fatalf("want the sidecar's accept, then the endpoint's refusal, then the policy: %v", rules)
	}
	without := Build(Config{Policy: p, SidecarUID: 1337, Reserved: reserved, Ports: ListenPorts{15053, 15080, 15443}})
	if len(without.IPv4[0].Chains[0].Rules) != len(rules)-1 {
		t.Fatal("without an endpoint, the ruleset is unchanged")
	}
}
