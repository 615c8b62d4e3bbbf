package sidecar

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Upstream is the resolver the DNS proxy forwards to and the dialer resolves
// with ("host:port"). Never the system resolver: inside the sandbox,
// resolv.conf points at the proxy itself.
type Upstream struct {
	Addr    string
	Timeout time.Duration
}

// ParseUpstream reads "host", "host:port" or "[v6]:port"; the port defaults to 53.
func ParseUpstream(text string) Upstream {
	u := Upstream{Timeout: 2 * time.Second}
	if host, port, err := net.SplitHostPort(text); err == nil {
		u.Addr = net.JoinHostPort(host, port)
	} else {
		u.Addr = net.JoinHostPort(strings.Trim(text, "[]"), "53")
	}
	return u
}

func randomID() uint16 {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint16(b[:])
}

// question is what the proxy forwards: only the judged question, a fresh ID.
func buildQuery(id uint16, q dnsmessage.Question, edns bool, udpSize uint16) ([]byte, error) {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), dnsmessage.Header{ID: id, RecursionDesired: true})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if edns {
		if err := b.StartAdditionals(); err != nil {
			return nil, err
		}
		var opt dnsmessage.ResourceHeader
		if err := opt.SetEDNS0(int(udpSize), dnsmessage.RCodeSuccess, false); err != nil {
			return nil, err
		}
		if err := b.OPTResource(opt, dnsmessage.OPTResource{}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// matches: a response carrying the ID and question that were sent; anything
// else is dropped as spoofed. truncated reports TC.
func matches(answer []byte, id uint16, q dnsmessage.Question) (ok, truncated bool) {
	var p dnsmessage.Parser
	h, err := p.Start(answer)
	if err != nil || !h.Response || h.ID != id {
		return false, false
	}
	got, err := p.Question()
	if err != nil {
		return false, false
	}
	return strings.EqualFold(got.Name.String(), q.Name.String()) && got.Type == q.Type, h.Truncated
}

var errUpstreamTimeout = errors.New("upstream DNS timeout")

// Ask sends one question upstream over UDP (retrying once, falling back to TCP
// when the answer is truncated) or over TCP, and returns the raw answer.
func (u Upstream) Ask(q dnsmessage.Question, edns bool, tcp bool) ([]byte, error) {
	if !tcp {
		for attempt := 0; attempt < 2; attempt++ {
			answer, truncated, err := u.askUDP(q, edns)
			if err != nil {
				if attempt == 1 {
					return nil, err
				}
				continue
			}
			if !truncated {
				return answer, nil
			}
			break // the full answer needs TCP
		}
	}
	return u.askTCP(q, edns)
}

func (u Upstream) askUDP(q dnsmessage.Question, edns bool) ([]byte, bool, error) {
	id := randomID()
	msg, err := buildQuery(id, q, edns, 1232)
	if err != nil {
		return nil, false, err
	}
	conn, err := net.Dial("udp", u.Addr)
	if err != nil {
		return nil, false, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(u.Timeout))
	if _, err := conn.Write(msg); err != nil {
		return nil, false, err
	}
	buf := make([]byte, 65535)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, false, errUpstreamTimeout
			}
			return nil, false, err
		}
		if ok, truncated := matches(buf[:n], id, q); ok {
			return append([]byte(nil), buf[:n]...), truncated, nil
		}
	}
}

func (u Upstream) askTCP(q dnsmessage.Question, edns bool) ([]byte, error) {
	id := randomID()
	msg, err := buildQuery(id, q, edns, 65535)
	if err != nil {
		return nil, err
	}
	conn, err := net.DialTimeout("tcp", u.Addr, u.Timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(u.Timeout))
	if _, err := conn.Write(frame(msg)); err != nil {
		return nil, err
	}
	for {
		answer, err := readFrame(conn)
		if err != nil {
			return nil, err
		}
		if ok, _ := matches(answer, id, q); ok {
			return answer, nil
		}
	}
}

// DNS over TCP frames each message with a 16-bit length (RFC 1035 §4.2.2).
func frame(m []byte) []byte {
	out := make([]byte, 2+len(m))
	binary.BigEndian.PutUint16(out, uint16(len(m)))
	copy(out[2:], m)
	return out
}

func readFrame(r io.Reader) ([]byte, error) {
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	m := make([]byte, binary.BigEndian.Uint16(n[:]))
	_, err := io.ReadFull(r, m)
	return m, err
}
