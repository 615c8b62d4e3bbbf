package sidecar

import (
	"net"
	"net/netip"
	"strconv"

	"sandboxing.dev/sandbox-egress/internal/policy"
)

// The lockdown redirects every TCP flow the workload opens (443 to the SNI
// listener, the rest to the transparent HTTP listener) and holds no policy.
// Here each redirected connection is routed by what the workload dialed
// (SO_ORIGINAL_DST) and the policy in force now (policy.JudgeRedirected):
// port 80/443 by its Host/SNI name unless an address rule lets that address
// through directly, any other port by address rules and defaultAction. So an
// address rule or defaultAction change takes effect on the next connection,
// with no firewall change and no NET_ADMIN.

// ProtoTCP marks decisions on redirected connections judged by address.
const ProtoTCP Protocol = "tcp"

// serveTransparent routes one connection accepted on a transparent listener
// whose name-judged port is namePort (80 for the HTTP listener, 443 for TLS);
// byName is that listener's Host/SNI judgement. A connection that was not
// redirected (a client on loopback dialing the listener) is judged by name,
// as the listener always did.
func (s *Sidecar) serveTransparent(c *net.TCPConn, namePort int, byName func(*net.TCPConn, int)) {
	dst, redirected, err := redirectedDestination(c)
	if err != nil {
		s.decisions.Record(Decision{Protocol: ProtoTCP, Target: "<none>", Port: namePort,
			Verdict: policy.Decision{Verdict: policy.Deny, Rule: policy.RefDefault},
			Reason:  "cannot read the original destination: " + err.Error()})
		reset(c)
		return
	}
	if !redirected {
		byName(c, namePort)
		return
	}
	addr, port := dst.Addr(), int(dst.Port())
	d := routeRedirected(s.policy.Current(), s.reserved, s.dialer.controller, addr.String(), port)
	switch {
	case d.Route == policy.RouteName && port == namePort:
		byName(c, port)
	case d.Route == policy.RouteDirect:
		s.direct(c, addr, port, *d.Rule)
	default:
		rule := policy.RefDefault
		if d.Rule != nil {
			rule = *d.Rule
		}
		s.decisions.Record(Decision{Protocol: ProtoTCP, Target: addr.String(), Port: port,
			Verdict: policy.Decision{Verdict: policy.Deny, Rule: rule}, Address: addr.String()})
		reset(c)
	}
}

// routeRedirected is the policy's judgement of a redirected connection, except
// that the policy endpoint is the sidecar's alone, whatever rule opens its range.
func routeRedirected(p *policy.Policy, reserved *policy.CIDRSet, controller netip.AddrPort, addr string, port int) policy.RedirectedDecision {
	if forbidden(controller, addr, port) {
		ref := policy.RefReserved
		return policy.RedirectedDecision{Route: policy.RouteRefuse, Rule: &ref}
	}
	return p.JudgeRedirected(reserved, addr, port)
}

// direct connects, as the sidecar's UID, to the address the workload dialed
// and joins the two connections.
func (s *Sidecar) direct(c *net.TCPConn, addr netip.Addr, port int, rule policy.RuleRef) {
	s.decisions.Record(Decision{Protocol: ProtoTCP, Target: addr.String(), Port: port,
		Verdict: policy.Decision{Verdict: policy.Allow, Rule: rule}, Address: addr.String()})
	up, err := net.DialTimeout("tcp", net.JoinHostPort(addr.String(), strconv.Itoa(port)), s.dialer.timeout)
	if err != nil {
		// The workload sees what it would have seen dialing itself: a reset.
		reset(c)
		return
	}
	upstream := up.(*net.TCPConn)
	_ = upstream.SetNoDelay(true)
	splice(c, c, upstream)
}

// reset ends a refused connection with RST, so the client fails at once
// (connection reset) rather than reading an empty, orderly close.
func reset(c *net.TCPConn) {
	_ = c.SetLinger(0)
	c.Close()
}
