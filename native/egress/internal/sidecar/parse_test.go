package sidecar

import (
	"crypto/tls"
	"net"
	"testing"
)

func TestParseAuthority(t *testing.T) {
	for _, tc := range []struct {
		in   string
		def  int
		host string
		port int
		ok   bool
	}{
		{"example.org:443", 0, "example.org", 443, true},
		{"example.org", 80, "example.org", 80, true},
		{"example.org", 0, "", 0, false},
		{"[2001:db8::1]:8443", 0, "2001:db8::1", 8443, true},
		{"user@example.org:443", 0, "", 0, false},
		{"example.org:0", 0, "", 0, false},
		{"example.org:65536", 0, "", 0, false},
		{"exa mple.org:1", 0, "", 0, false},
		{"example.org/x:1", 0, "", 0, false},
		{"[zz]:1", 0, "", 0, false},
	} {
		host, port, ok := parseAuthority(tc.in, tc.def)
		if host != tc.host || port != tc.port || ok != tc.ok {
			t.Errorf("%q: got %q %d %v", tc.in, host, port, ok)
		}
	}
}

// clientHello captures what crypto/tls sends for serverName.
func clientHello(t *testing.T, serverName string) []byte {
	a, b := net.Pipe()
	go func() {
		c := tls.Client(a, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
		_ = c.Handshake()
	}()
	buf := make([]byte, 16384)
	n, err := b.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	a.Close()
	return buf[:n]
}

func TestParseClientHello(t *testing.T) {
	hello := clientHello(t, "api.example.org")
	if r := parseClientHello(hello); r.kind != helloComplete || r.serverName != "api.example.org" {
		t.Fatalf("whole: %+v", r)
	}
	// A byte at a time: incomplete until the last byte.
	for i := 1; i < len(hello); i++ {
		if r := parseClientHello(hello[:i]); r.kind != helloIncomplete {
			t.Fatalf("prefix %d: %+v", i, r)
		}
	}
	// Split over two records (allowed, and used to dodge naive SNI filters).
	body := hello[5:]
	cut := len(body) / 2
	split := append(append([]byte{22, 3, 1, byte(cut >> 8), byte(cut)}, body[:cut]...),
		append([]byte{22, 3, 1, byte((len(body) - cut) >> 8), byte(len(body) - cut)}, body[cut:]...)...)
	if r := parseClientHello(split); r.serverName != "api.example.org" {
		t.Fatalf("split: %+v", r)
	}
	if r := parseClientHello(clientHello(t, "")); r.kind != helloComplete || r.serverName != "" {
		t.Fatalf("no SNI: %+v", r)
	}
	for name, data := range map[string][]byte{
		"plain HTTP":  []byte("GET / HTTP/1.1\r\n\r\n"),
		"SSLv2-ish":   {22, 2, 0, 0, 10},
		"zero length": {22, 3, 1, 0, 0},
		"not a hello": {22, 3, 1, 0, 4, 2, 0, 0, 0},
		"truncated":   {22, 3, 1, 0, 6, 1, 0, 0, 2, 3, 3},
	} {
		if r := parseClientHello(data); r.kind != helloInvalid {
			t.Errorf("%s: %+v", name, r)
		}
	}
}

func TestTransparentTarget(t *testing.T) {
	for _, tc := range []struct {
		target string
		hosts  []string
		host   string
		path   string
		bad    bool
	}{
		{"/x", []string{"a.test"}, "a.test", "/x", false},
		{"/x", []string{"a.test:80"}, "a.test", "/x", false},
		{"/x", []string{"a.test:8080"}, "a.test", "/x", false},
		{"/x", nil, "", "", true},
		{"/x", []string{"a.test", "a.test"}, "", "", true},
		{"http://A.test./y?z", []string{"a.test"}, "A.test.", "/y?z", false},
		{"http://b.test/", []string{"a.test"}, "", "", true},
		{"http://a.test:81/", []string{"a.test"}, "", "", true},
		{"https://a.test/", []string{"a.test"}, "", "", true},
		{"http://u@a.test/", []string{"a.test"}, "", "", true},
		{"*", []string{"a.test"}, "a.test", "*", false},
		{"x", []string{"a.test"}, "", "", true},
	} {
		got, bad := transparentTarget(rawRequest{method: "GET", target: tc.target, hosts: tc.hosts}, 80)
		if (bad != nil) != tc.bad || (!tc.bad && (got.host != tc.host || got.path != tc.path || got.port != 80)) {
			t.Errorf("%q %v: got %+v %+v", tc.target, tc.hosts, got, bad)
		}
	}
}
