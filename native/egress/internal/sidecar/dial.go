package sidecar

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"sandboxing.dev/sandbox-egress/internal/policy"
)

// Judge a destination and, if allowed, connect to it. For a name the sidecar
// resolves it itself and connects to an address the policy accepts for that
// name: never to whatever address the workload had in mind, so a connection to
// a denied IP carrying an allowed Host or SNI reaches the allowed name's own
// address. Every outcome is one recorded decision.
type dialer struct {
	policy    func() *policy.Policy
	reserved  *policy.CIDRSet
	resolver  *Resolver
	decisions *Decisions
	timeout   time.Duration
	// controller: the policy endpoint, never dialed for the workload (channel.go).
	controller netip.AddrPort
}

// dialError is a refusal with the HTTP status a proxy answers it with.
type dialError struct {
	status  int
	message string
}

func (e *dialError) Error() string { return e.message }

func (d *dialer) dial(proto Protocol, host string, port int) (*net.TCPConn, error) {
	p := d.policy()
	literal, isLiteral := policy.NormalizeAddress(host)
	name, target := "", ""
	if isLiteral {
		target = literal.String()
	} else {
		name = policy.NormalizeName(host)
		target = name
	}
	refuse := func(dec policy.Decision, address, reason string) error {
		d.decisions.Record(Decision{Protocol: proto, Target: target, Port: port, Verdict: dec, Address: address, Reason: reason})
		return &dialError{403, refusalMessage(target, port, dec)}
	}

	var candidates []string
	if isLiteral {
		candidates = []string{literal.String()}
	} else {
		// Judge the name before resolving it: a denied name never reaches upstream DNS.
		byName := p.DecideName(name, port)
		if byName.Verdict == policy.Deny {
			return nil, refuse(byName, "", "")
		}
		addrs, err := d.resolver.Resolve(name)
		if err != nil {
			reason := "cannot resolve: " + err.Error()
			d.decisions.Record(Decision{Protocol: proto, Target: name, Port: port, Verdict: byName, Reason: reason})
			return nil, &dialError{502, name + ": " + reason}
		}
		candidates = addrs
	}

	var first *policy.Decision
	var firstAddr string
	for _, address := range candidates {
		dec := p.JudgeDestination(d.reserved, policy.Destination{Name: name, Address: address, Port: port})
		if forbidden(d.controller, address, port) {
			dec = policy.Decision{Verdict: policy.Deny, Rule: policy.RefReserved}
		}
		if dec.Verdict == policy.Deny {
			if first == nil {
				first, firstAddr = &dec, address
			}
			continue
		}
		d.decisions.Record(Decision{Protocol: proto, Target: target, Port: port, Verdict: dec, Address: address})
		conn, err := net.DialTimeout("tcp4", net.JoinHostPort(address, strconv.Itoa(port)), d.timeout)
		if err != nil {
			status := 502
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				status = 504
			}
			return nil, &dialError{status, fmt.Sprintf("%s:%d (%s): %s", target, port, address, errnoName(err))}
		}
		tcp := conn.(*net.TCPConn)
		_ = tcp.SetNoDelay(true)
		return tcp, nil
	}
	if first == nil {
		return nil, refuse(policy.Decision{Verdict: policy.Deny, Rule: policy.RefDefault}, "", "no address")
	}
	return nil, refuse(*first, firstAddr, "")
}

func errnoName(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ECONNREFUSED:
			return "ECONNREFUSED"
		case syscall.EHOSTUNREACH:
			return "EHOSTUNREACH"
		case syscall.ENETUNREACH:
			return "ENETUNREACH"
		case syscall.ECONNRESET:
			return "ECONNRESET"
		}
	}
	return err.Error()
}

func refusalMessage(target string, port int, d policy.Decision) string {
	by := "rule " + d.Rule.String()
	switch d.Rule {
	case policy.RefDefault:
		by = "the default action"
	case policy.RefReserved:
		by = "the reserved-address rule (private, loopback, link-local or metadata address; allow it with an address rule)"
	}
	return fmt.Sprintf("egress to %s:%d denied by %s of the sandbox's egress policy", target, port, by)
}
