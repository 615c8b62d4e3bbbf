package lockdown

import (
	"net/netip"
	"strings"
	"testing"
)

// The policy endpoint is refused to every UID but the sidecar's, right after
// the sidecar's accept and before any conntrack state could let a packet by.
// (Every other UID's TCP is redirected to the sidecar in nat first; the
// sidecar refuses to dial the endpoint for the workload — see
// sidecar.TestRedirectedNeverDialsTheEndpoint.)
func TestControllerEndpointOnlyForTheSidecar(t *testing.T) {
	rs := Build(Config{SidecarUID: 1337, Ports: ListenPorts{15053, 15080, 15443}, Controller: netip.MustParseAddrPort("10.213.5.1:15090")})
	rules := rs.IPv4[0].Chains[0].Rules
	owner, refuse, state := -1, -1, -1
	for i, r := range rules {
		switch {
		case strings.Contains(r, "--uid-owner 1337 -j ACCEPT"):
			owner = i
		case r == "-A SANDBOX-EGRESS -d 10.213.5.1/32 -p tcp -m tcp --dport 15090 -j "+prohibitedV4:
			refuse = i
		case state < 0 && strings.Contains(r, "--ctstate RELATED,ESTABLISHED"):
			state = i
		}
	}
	if owner < 0 || refuse != owner+1 || state < refuse {
		t.Fatalf("want the sidecar's accept, then the endpoint's refusal, then any conntrack state: %v", rules)
	}
	without := Build(Config{SidecarUID: 1337, Ports: ListenPorts{15053, 15080, 15443}})
	if len(without.IPv4[0].Chains[0].Rules) != len(rules)-1 {
		t.Fatal("without an endpoint, the ruleset is unchanged")
	}
}
