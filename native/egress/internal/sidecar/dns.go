package sidecar

import (
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"sandboxing.dev/sandbox-egress/internal/policy"
)

// The DNS proxy: every query from the workload lands here (the lockdown
// redirects UDP and TCP port 53). A name the policy allows on some port is
// forwarded upstream as a fresh query carrying only its question; any other
// name gets NXDOMAIN and never leaves the sandbox, so DNS cannot carry data
// out through names the policy does not allow. AAAA answers are empty: the
// lockdown closes IPv6, and an empty answer spares clients a failed attempt.
type dnsProxy struct {
	upstream  Upstream
	policy    func() *policy.Policy
	decisions *Decisions
}

const (
	dnsTCPIdle = 10 * time.Second
	// dnsInFlight bounds the UDP queries answered at once: a workload flooding
	// the proxy gets drops (UDP's own failure mode), not unbounded memory.
	dnsInFlight = 256
)

type parsedQuery struct {
	id       uint16
	question dnsmessage.Question
	udpSize  int
	edns     bool
}

// parseQuery: a standard query with exactly one question, or ok false.
func parseQuery(m []byte) (q parsedQuery, ok bool) {
	var p dnsmessage.Parser
	h, err := p.Start(m)
	if err != nil || h.Response || h.OpCode != 0 {
		return q, false
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		return q, false
	}
	q = parsedQuery{id: h.ID, question: qs[0], udpSize: 512}
	if p.SkipAllAnswers() != nil || p.SkipAllAuthorities() != nil {
		return q, false
	}
	for {
		rh, err := p.AdditionalHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			break
		}
		if err != nil {
			return q, false
		}
		if rh.Type == dnsmessage.TypeOPT {
			q.edns = true
			q.udpSize = max(512, int(rh.Class))
		}
		if p.SkipAdditional() != nil {
			return q, false
		}
	}
	return q, true
}

// emptyResponse: no answers; NXDOMAIN for refused names, SERVFAIL, FORMERR or NODATA.
func emptyResponse(id uint16, q *dnsmessage.Question, rcode dnsmessage.RCode, truncated bool) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{
		ID: id, Response: true, RecursionDesired: true, RecursionAvailable: true,
		RCode: rcode, Truncated: truncated,
	})
	_ = b.StartQuestions()
	if q != nil {
		_ = b.Question(*q)
	}
	out, _ := b.Finish()
	return out
}

func typeName(t dnsmessage.Type) string { return strings.TrimPrefix(t.String(), "Type") }

func (d *dnsProxy) respond(m []byte, tcp bool) []byte {
	q, ok := parseQuery(m)
	if !ok {
		if len(m) < 2 {
			return nil
		}
		return emptyResponse(binary.BigEndian.Uint16(m), nil, dnsmessage.RCodeFormatError, false)
	}
	name := policy.NormalizeName(q.question.Name.String())
	decision := d.policy().DecideNameAnyPort(name)
	e := Decision{Protocol: ProtoDNS, Target: name, Port: 53, Verdict: decision}
	if q.question.Type != dnsmessage.TypeA {
		e.Reason = "query type " + typeName(q.question.Type)
	}
	d.decisions.Record(e)
	if decision.Verdict == policy.Deny {
		return emptyResponse(q.id, &q.question, dnsmessage.RCodeNameError, false)
	}
	if q.question.Type == dnsmessage.TypeAAAA {
		return emptyResponse(q.id, &q.question, dnsmessage.RCodeSuccess, false)
	}
	reply, err := d.upstream.Ask(q.question, q.edns, tcp)
	if err != nil {
		return emptyResponse(q.id, &q.question, dnsmessage.RCodeServerFailure, false)
	}
	binary.BigEndian.PutUint16(reply, q.id) // the upstream's answer, byte for byte, under the client's ID
	if !tcp && len(reply) > q.udpSize {
		return emptyResponse(q.id, &q.question, dnsmessage.RCodeSuccess, true)
	}
	return reply
}

func (d *dnsProxy) serveUDP(pc net.PacketConn) {
	buf := make([]byte, 65535)
	slots := make(chan struct{}, dnsInFlight)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		select {
		case slots <- struct{}{}:
		default:
			continue // full: drop, the client retries
		}
		m := append([]byte(nil), buf[:n]...)
		go func() {
			defer func() { <-slots }()
			if reply := d.respond(m, false); reply != nil {
				_, _ = pc.WriteTo(reply, from)
			}
		}()
	}
}

func (d *dnsProxy) serveTCP(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go func() {
			defer c.Close()
			for {
				_ = c.SetReadDeadline(time.Now().Add(dnsTCPIdle))
				m, err := readFrame(c)
				if err != nil {
					return
				}
				if reply := d.respond(m, true); reply != nil {
					if _, err := c.Write(frame(reply)); err != nil {
						return
					}
				}
			}
		}()
	}
}
