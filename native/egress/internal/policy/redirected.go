package policy

import "slices"

// NameJudgedPorts are the ports whose redirected connections are judged by the
// name they carry (Host on 80, TLS SNI on 443).
var NameJudgedPorts = []int{80, 443}

// Route is what the sidecar does with a redirected connection.
type Route string

const (
	// RouteDirect: connect to the original destination.
	RouteDirect Route = "direct"
	// RouteRefuse: close the connection.
	RouteRefuse Route = "refuse"
	// RouteName: judge by the Host / SNI name and connect to the address the
	// sidecar resolves for it, never the one dialed.
	RouteName Route = "name"
)

// RedirectedDecision: Rule is nil when the name inside the connection decides.
type RedirectedDecision struct {
	Route Route
	Rule  *RuleRef
}

// JudgeRedirected judges a TCP connection the lockdown redirected to the
// sidecar by its original destination (SO_ORIGINAL_DST). The firewall holds
// no policy: this is where address rules and defaultAction act on direct
// traffic, from the policy file the sidecar follows live. On 80/443 an
// address rule allowing the address means "reach it directly", anything else
// is judged by name; on any other port an address rule decides, else a
// reserved address is refused, else defaultAction (JudgeDestination for an IP
// literal). Same answers as judgeRedirected in src/egress/policy (vectors).
func (p *Policy) JudgeRedirected(reserved *CIDRSet, address string, port int) RedirectedDecision {
	if slices.Contains(NameJudgedPorts, port) {
		if a, ok := NormalizeAddress(address); ok {
			if r := p.FirstAddressRule(a, port); r != nil && r.Action == Allow {
				ref := RefRule(r.Index)
				return RedirectedDecision{RouteDirect, &ref}
			}
		}
		return RedirectedDecision{RouteName, nil}
	}
	d := p.JudgeDestination(reserved, Destination{Address: address, Port: port})
	route := RouteRefuse
	if d.Verdict == Allow {
		route = RouteDirect
	}
	return RedirectedDecision{route, &d.Rule}
}
