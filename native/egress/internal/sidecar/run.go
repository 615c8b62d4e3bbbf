// Package sidecar is the egress sidecar: a DNS proxy answering only allowed
// names, an explicit HTTP proxy (CONNECT, absolute http://), transparent
// listeners judging port 80 by Host, 443 by TLS SNI and every other port the
// workload dials by address rules and defaultAction, one decision log line
// per connection, probes and metrics, and a policy that follows its file.
package sidecar

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"sandboxing.dev/sandbox-egress/internal/policy"
)

type Ports struct {
	Proxy, DNS, HTTP, TLS, Health, Metrics int
}

type DestinationPorts struct{ HTTP, TLS int }

type Options struct {
	Sandbox    string
	PolicyFile string
	// PolicyAckFile, when set, is where every load of the policy file is
	// acknowledged (ack.go); opened before privileges are dropped.
	PolicyAckFile string
	UpstreamDNS   string // "" = the first nameserver of /etc/resolv.conf
	// ListenHost for the DNS proxy and proxies: loopback, since anything wider
	// would offer an open proxy to the rest of the network.
	ListenHost string
	// Ports to listen on; 0 picks a free one, and -1 turns off health or metrics.
	Ports Ports
	// DestinationPorts: the ports redirected traffic was meant for (80, 443).
	DestinationPorts DestinationPorts
	// UID to switch to after binding when started as root (0: stay).
	UID, GID int
	Log      *slog.Logger
	// Poll is the period of the policy file's stat fallback.
	Poll time.Duration
	// Channel, when its URL is set, is the live policy channel (channel.go).
	Channel ChannelOptions
	// Controller is the policy endpoint's address: the proxies never dial it.
	Controller netip.AddrPort
}

type Sidecar struct {
	decisions *Decisions
	reserved  *policy.CIDRSet
	dialer    *dialer
	policy    *PolicyFile
	closers   []func()
	// Bound are the ports actually bound (matters when 0 was asked for).
	Bound Ports
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (s *Sidecar) problem() string { return s.policy.Problem() }

// Start binds every listener, drops privileges and serves; it returns once
// the sidecar is ready (the "egress sidecar ready" line is written).
func Start(o Options) (*Sidecar, error) {
	log := o.Log.With("component", "egress-sidecar")
	upstreamText := o.UpstreamDNS
	if upstreamText == "" {
		var err error
		if upstreamText, err = resolvConfNameserver(); err != nil {
			return nil, err
		}
	}
	if o.ListenHost == "" {
		o.ListenHost = "127.0.0.1"
	}
	if o.DestinationPorts.HTTP == 0 {
		o.DestinationPorts.HTTP = 80
	}
	if o.DestinationPorts.TLS == 0 {
		o.DestinationPorts.TLS = 443
	}
	if o.Poll == 0 {
		o.Poll = 2 * time.Second
	}
	var ack *PolicyAck
	if o.PolicyAckFile != "" {
		var err error
		if ack, err = OpenPolicyAck(o.PolicyAckFile); err != nil {
			return nil, err
		}
	}
	pf, err := WatchPolicyFile(o.PolicyFile, log, o.Poll, ack)
	if err != nil {
		ack.Close()
		return nil, err
	}
	reserved, _ := policy.ReservedRanges(nil)
	upstream := ParseUpstream(upstreamText)
	s := &Sidecar{decisions: NewDecisions(log, o.Sandbox), reserved: reserved, policy: pf, conns: map[net.Conn]struct{}{}}
	// Closers run last to first: the file's watch stops before its acknowledgement closes.
	s.closers = append(s.closers, ack.Close, pf.Close)
	s.dialer = &dialer{policy: pf.Current, reserved: reserved, resolver: NewResolver(upstream), decisions: s.decisions, timeout: 10 * time.Second, controller: o.Controller}
	fail := func(err error) (*Sidecar, error) { s.Close(); return nil, err }

	addr := func(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
	dns := &dnsProxy{upstream: upstream, policy: pf.Current, decisions: s.decisions}
	udp, dnsTCP, err := listenDNS(o.ListenHost, o.Ports.DNS)
	if err != nil {
		return fail(err)
	}
	s.closers = append(s.closers, func() { udp.Close() })
	s.closers = append(s.closers, func() { dnsTCP.Close() })
	listeners := []struct {
		port  int
		serve func(*net.TCPConn)
	}{
		{o.Ports.Proxy, func(c *net.TCPConn) { s.serveHTTP(c, modeExplicit, 0) }},
		// The transparent listeners take every TCP flow the lockdown redirects
		// and route it by its original destination (redirected.go).
		{o.Ports.HTTP, func(c *net.TCPConn) {
			s.serveTransparent(c, o.DestinationPorts.HTTP, func(c *net.TCPConn, port int) { s.serveHTTP(c, modeTransparent, port) })
		}},
		{o.Ports.TLS, func(c *net.TCPConn) { s.serveTransparent(c, o.DestinationPorts.TLS, s.serveTLS) }},
	}
	var tcp []net.Listener
	for _, l := range listeners {
		ln, err := net.Listen("tcp4", addr(o.ListenHost, l.port))
		if err != nil {
			return fail(err)
		}
		s.closers = append(s.closers, func() { ln.Close() })
		tcp = append(tcp, ln)
	}
	var health, metrics net.Listener
	if o.Ports.Health >= 0 {
		if health, err = net.Listen("tcp", addr("0.0.0.0", o.Ports.Health)); err != nil {
			return fail(err)
		}
		srv := serveObservability(health, s.observabilityHandler(true))
		s.closers = append(s.closers, func() { srv.Close() })
	}
	if o.Ports.Metrics >= 0 {
		if metrics, err = net.Listen("tcp", addr("127.0.0.1", o.Ports.Metrics)); err != nil {
			return fail(err)
		}
		srv := serveObservability(metrics, s.observabilityHandler(false))
		s.closers = append(s.closers, func() { srv.Close() })
	}
	// Everything is bound; from here on the sidecar is the one UID the
	// firewall lets out.
	if o.UID != 0 {
		if err := dropPrivileges(o.UID, o.GID); err != nil {
			return fail(err)
		}
	}
	if o.Channel.URL != "" {
		ch := startChannel(o.Channel, pf, log)
		s.closers = append(s.closers, ch.Close)
	}
	go dns.serveUDP(udp)
	go dns.serveTCP(dnsTCP)
	for i, ln := range tcp {
		go s.accept(ln, listeners[i].serve)
	}
	port := func(l any) int {
		switch v := l.(type) {
		case net.Listener:
			if v != nil {
				return v.Addr().(*net.TCPAddr).Port
			}
		case net.PacketConn:
			return v.LocalAddr().(*net.UDPAddr).Port
		}
		return 0
	}
	s.Bound = Ports{DNS: port(udp), Proxy: port(tcp[0]), HTTP: port(tcp[1]), TLS: port(tcp[2]), Health: port(health), Metrics: port(metrics)}
	ports := map[string]int{"dns": s.Bound.DNS, "proxy": s.Bound.Proxy, "http": s.Bound.HTTP, "tls": s.Bound.TLS}
	if health != nil {
		ports["health"] = s.Bound.Health
	}
	if metrics != nil {
		ports["metrics"] = s.Bound.Metrics
	}
	log.Info("egress sidecar ready", "sandbox", o.Sandbox, "ports", ports, "upstreamDns", upstreamText, "uid", os.Getuid())
	return s, nil
}

func (s *Sidecar) accept(ln net.Listener, serve func(*net.TCPConn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		tcp := c.(*net.TCPConn)
		_ = tcp.SetNoDelay(true)
		s.track(tcp, true)
		go func() {
			defer s.track(tcp, false)
			serve(tcp)
		}()
	}
}

func (s *Sidecar) track(c net.Conn, open bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if open {
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
}

// Close stops serving; tunnels and spliced connections are ended rather than
// waited for. The firewall stays, so closing the sidecar closes egress.
func (s *Sidecar) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
}

// dropPrivileges: the firewall lets exactly one UID out, the sidecar's. Setting
// the UID from root clears every capability; Go applies it to all threads.
func dropPrivileges(uid, gid int) error {
	current := os.Getuid()
	if current == uid {
		return nil
	}
	if current != 0 {
		return fmt.Errorf("sidecar runs as UID %d and cannot switch to UID %d; start it as UID %d", current, uid, uid)
	}
	if err := syscall.Setgroups([]int{}); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid: %w", err)
	}
	if os.Getuid() != uid {
		return fmt.Errorf("failed to switch to UID %d", uid)
	}
	return nil
}

// resolvConfNameserver is the first nameserver of /etc/resolv.conf, read
// before the workload can change anything.
func resolvConfNameserver() (string, error) {
	text, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return "", err
	}
	for _, line := range splitLines(string(text)) {
		f := fieldsOf(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if net.ParseIP(f[1]) != nil && net.ParseIP(f[1]).To4() == nil {
				return "[" + f[1] + "]:53", nil
			}
			return f[1], nil
		}
	}
	return "", errors.New("no upstreamDns given and no nameserver in /etc/resolv.conf")
}

func splitLines(s string) []string { return strings.Split(s, "\n") }

func fieldsOf(s string) []string { return strings.Fields(s) }

// listenDNS binds UDP and TCP on one port. Asked for any port (0, in tests),
// the number UDP got may be taken for TCP: then it tries another.
func listenDNS(host string, port int) (net.PacketConn, net.Listener, error) {
	for attempt := 0; ; attempt++ {
		udp, err := net.ListenPacket("udp4", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return nil, nil, err
		}
		tcp, err := net.Listen("tcp4", net.JoinHostPort(host, strconv.Itoa(udp.LocalAddr().(*net.UDPAddr).Port)))
		if err == nil {
			return udp, tcp, nil
		}
		udp.Close()
		if port != 0 || attempt == 20 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, err
		}
	}
}
