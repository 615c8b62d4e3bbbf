package sidecar

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"sandboxing.dev/sandbox-egress/internal/policy"
)

func TestParseSockaddr(t *testing.T) {
	v4 := make([]byte, 16)
	binary.NativeEndian.PutUint16(v4[0:2], syscall.AF_INET)
	binary.BigEndian.PutUint16(v4[2:4], 5432)
	copy(v4[4:8], []byte{192, 0, 2, 10})
	if got, err := parseSockaddr(v4); err != nil || got != netip.MustParseAddrPort("192.0.2.10:5432") {
		t.Fatalf("v4: %v %v", got, err)
	}
	v6 := make([]byte, 28)
	binary.NativeEndian.PutUint16(v6[0:2], syscall.AF_INET6)
	binary.BigEndian.PutUint16(v6[2:4], 22)
	a := netip.MustParseAddr("2001:db8::9").As16()
	copy(v6[8:24], a[:])
	if got, err := parseSockaddr(v6); err != nil || got != netip.MustParseAddrPort("[2001:db8::9]:22") {
		t.Fatalf("v6: %v %v", got, err)
	}
	if _, err := parseSockaddr(v4[:4]); err == nil {
		t.Fatal("a short sockaddr parsed")
	}
}

// A client dialing the listener itself (no nat rule in this test's namespace)
// is not taken for a redirected connection: the listener keeps judging it by
// name, as it always did.
func TestDirectDialIsNotRedirected(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err == nil {
			defer c.Close()
			buf := make([]byte, 1)
			_, _ = c.Read(buf)
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, redirected, err := redirectedDestination(c.(*net.TCPConn))
	if err != nil || redirected {
		t.Fatalf("redirected=%v err=%v", redirected, err)
	}
}

// A workload whose policy opens the policy endpoint's range (an address rule,
// or defaultAction allow) still cannot reach the endpoint through the
// redirect: every other UID's TCP comes to the sidecar, which would otherwise
// dial it as its own UID, past the firewall's refusal.
func TestRedirectedNeverDialsTheEndpoint(t *testing.T) {
	reserved, _ := policy.ReservedRanges(nil)
	controller := netip.MustParseAddrPort("10.213.5.1:15090")
	for _, text := range []string{
		`{"defaultAction":"deny","rules":[{"action":"allow","target":"10.0.0.0/8"}]}`,
		`{"defaultAction":"allow","rules":[{"action":"allow","target":"10.213.5.1","ports":[15090,15091]}]}`,
	} {
		p, err := policy.FromText([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		if d := p.JudgeRedirected(reserved, "10.213.5.1", 15090); d.Route != policy.RouteDirect {
			t.Fatalf("%s: the policy alone should open the endpoint's address (else this test proves nothing): %+v", text, d)
		}
		if d := routeRedirected(p, reserved, controller, "10.213.5.1", 15090); d.Route != policy.RouteRefuse {
			t.Fatalf("%s: the endpoint was routed %s", text, d.Route)
		}
		if d := routeRedirected(p, reserved, controller, "10.213.5.1", 15091); d.Route != policy.RouteDirect {
			t.Fatalf("%s: another port of that address should follow the policy: %s", text, d.Route)
		}
	}
}
