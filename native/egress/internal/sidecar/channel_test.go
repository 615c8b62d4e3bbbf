package sidecar

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sandboxing.dev/sandbox-egress/internal/policy"
)

// A fake endpoint: streams what is pushed to it, records acks and tokens.
type fakeEndpoint struct {
	mu     sync.Mutex
	acks   []string
	tokens []string
	// dials: the tokens of the policy watch's requests alone (an ack's
	// retries carry the token of the stream they acknowledge for).
	dials   []string
	push    chan string
	srv     *httptest.Server
	refuse  bool
	streams int
	conns   int
	protos  []string
}

func newFakeEndpoint(t *testing.T) *fakeEndpoint {
	return newFakeEndpointWith(t, false)
}

// newFakeEndpointWith: with http2, the endpoint offers HTTP/2 as the
// operator's does, and counts the connections made to it.
func newFakeEndpointWith(t *testing.T, http2 bool) *fakeEndpoint {
	e := &fakeEndpoint{push: make(chan string, 16)}
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(e.serve))
	e.srv.EnableHTTP2 = http2
	e.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			e.mu.Lock()
			e.conns++
			e.mu.Unlock()
		}
	}
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	return e
}

func (e *fakeEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.tokens = append(e.tokens, r.Header.Get("Authorization"))
	if r.URL.Path == "/v1/policy" {
		e.dials = append(e.dials, r.Header.Get("Authorization"))
	}
	e.protos = append(e.protos, r.Proto)
	refuse := e.refuse
	e.mu.Unlock()
	if refuse {
		http.Error(w, `{"error":"POD_REPLACED"}`, http.StatusForbidden)
		return
	}
	switch r.URL.Path {
	case "/v1/policy":
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		e.mu.Lock()
		e.streams++
		e.mu.Unlock()
		for {
			select {
			case line := <-e.push:
				if line == "close" {
					return
				}
				_, _ = io.WriteString(w, line+"\n")
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
		}
	case "/v1/policy/applied":
		body, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		e.acks = append(e.acks, string(body))
		e.mu.Unlock()
		_, _ = io.WriteString(w, "{}")
	}
}

func (e *fakeEndpoint) snapshot() (acks, tokens []string, streams int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.acks...), append([]string(nil), e.tokens...), e.streams
}

func message(gen int, hash string, pol string) string {
	b, _ := json.Marshal(map[string]any{"generation": gen, "hash": hash, "policy": json.RawMessage(pol)})
	return string(b)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func channelFixture(t *testing.T, e *fakeEndpoint) (*PolicyFile, *policyChannel, string) {
	dir := t.TempDir()
	policyPath := filepath.Join(dir, "policy.json")
	must(t, os.WriteFile(policyPath, []byte(`{"defaultAction":"deny","rules":[]}`), 0o644))
	tokenPath := filepath.Join(dir, "token")
	must(t, os.WriteFile(tokenPath, []byte("token-1\n"), 0o600))
	caPath := filepath.Join(dir, "ca.crt")
	must(t, os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.srv.Certificate().Raw}), 0o644))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	pf, err := WatchPolicyFile(policyPath, log, 20*time.Millisecond, nil)
	must(t, err)
	t.Cleanup(pf.Close)
	ch := startChannel(ChannelOptions{URL: e.srv.URL, TokenFile: tokenPath, CAFile: caPath, Silence: 2 * time.Second}, pf, log)
	t.Cleanup(ch.Close)
	return pf, ch, dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func allows(pf *PolicyFile, name string) bool {
	return pf.Current().DecideName(name, 443).Verdict == policy.Allow
}

func TestChannelSwapsPolicyAndAcknowledges(t *testing.T) {
	e := newFakeEndpoint(t)
	pf, _, dir := channelFixture(t, e)
	if allows(pf, "pypi.org") {
		t.Fatal("the start-up policy (deny-all) must be in force before the first message")
	}
	e.push <- message(2, strings.Repeat("a", 64), `{"defaultAction":"deny","rules":[{"action":"allow","target":"pypi.org"}]}`)
	waitFor(t, "the policy from the channel", func() bool { return allows(pf, "pypi.org") })
	waitFor(t, "the ack", func() bool { acks, _, _ := e.snapshot(); return len(acks) == 1 })
	acks, tokens, _ := e.snapshot()
	if acks[0] != `{"generation":2,"hash":"`+strings.Repeat("a", 64)+`"}` {
		t.Fatalf("ack = %s", acks[0])
	}
	if tokens[0] != "Bearer token-1" {
		t.Fatalf("token = %q", tokens[0])
	}
	// The file no longer decides once the channel has: an older policy written
	// there later (the kubelet's sync lags) does not roll the sidecar back.
	must(t, os.WriteFile(filepath.Join(dir, "policy.json"), []byte(`{"defaultAction":"deny","rules":[]}`), 0o644))
	time.Sleep(100 * time.Millisecond)
	if !allows(pf, "pypi.org") {
		t.Fatal("the file overrode the channel's newer policy")
	}
	// A message that does not compile closes egress and is not acknowledged.
	e.push <- message(3, strings.Repeat("b", 64), `{"defaultAction":"sometimes"}`)
	waitFor(t, "deny-all after a bad policy", func() bool { return !allows(pf, "pypi.org") })
	if pf.Problem() == "" {
		t.Fatal("a bad policy must be a readiness problem")
	}
	time.Sleep(50 * time.Millisecond)
	if acks, _, _ := e.snapshot(); len(acks) != 1 {
		t.Fatalf("a policy that was not applied was acknowledged: %v", acks)
	}
}

func TestChannelAcknowledgesOnTheWatchConnection(t *testing.T) {
	e := newFakeEndpointWith(t, true)
	pf, _, _ := channelFixture(t, e)
	for i, target := range []string{"pypi.org", "example.org"} {
		e.push <- message(2+i, strings.Repeat(string(rune('a'+i)), 64), `{"defaultAction":"deny","rules":[{"action":"allow","target":"`+target+`"}]}`)
		waitFor(t, "the policy from the channel", func() bool { return allows(pf, target) })
		waitFor(t, "the ack", func() bool { acks, _, _ := e.snapshot(); return len(acks) == i+1 })
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// One connection: the watch and both acknowledgements are streams on it.
	if e.conns != 1 {
		t.Fatalf("%d connections for one watch and two acks; want 1", e.conns)
	}
	for _, p := range e.protos {
		if p != "HTTP/2.0" {
			t.Fatalf("protocols %v; want HTTP/2.0 throughout", e.protos)
		}
	}
}

func TestChannelKeepsLastPolicyAndRedials(t *testing.T) {
	e := newFakeEndpoint(t)
	pf, _, dir := channelFixture(t, e)
	e.push <- message(2, strings.Repeat("a", 64), `{"defaultAction":"deny","rules":[{"action":"allow","target":"pypi.org"}]}`)
	waitFor(t, "first policy", func() bool { return allows(pf, "pypi.org") })
	// The endpoint ends the stream and refuses for a while: the policy stays.
	e.mu.Lock()
	e.refuse = true
	e.mu.Unlock()
	// A rotated token is read on the next dial.
	must(t, os.WriteFile(filepath.Join(dir, "token"), []byte("token-2"), 0o600))
	e.push <- "close"
	time.Sleep(300 * time.Millisecond)
	if !allows(pf, "pypi.org") {
		t.Fatal("the last policy must stay in force while the controller is unreachable")
	}
	e.mu.Lock()
	e.refuse = false
	e.mu.Unlock()
	waitFor(t, "a second stream", func() bool { _, _, n := e.snapshot(); return n == 2 })
	// The dial that opened the second stream; the first stream's ack may
	// still be retried with the token it was sent with (a CI run saw
	// token-1 last among all requests, from such a retry).
	e.mu.Lock()
	dials := append([]string(nil), e.dials...)
	e.mu.Unlock()
	if dials[len(dials)-1] != "Bearer token-2" {
		t.Fatalf("the rotated token was not used to dial: %v", dials)
	}
	e.push <- message(3, strings.Repeat("c", 64), `{"defaultAction":"deny","rules":[{"action":"allow","target":"example.org"}]}`)
	waitFor(t, "the policy after the redial", func() bool { return allows(pf, "example.org") && !allows(pf, "pypi.org") })
}

func TestChannelRefusesAnUntrustedEndpoint(t *testing.T) {
	e := newFakeEndpoint(t)
	// Another certificate for the same address, not signed by the CA the sidecar trusts.
	other := &fakeEndpoint{push: make(chan string, 16)}
	other.srv = httptest.NewUnstartedServer(http.HandlerFunc(other.serve))
	other.srv.TLS = &tls.Config{Certificates: []tls.Certificate{impostorCert(t)}}
	other.srv.StartTLS()
	t.Cleanup(other.srv.Close)
	pf, ch, _ := channelFixture(t, e)
	ch.Close()
	dir := t.TempDir()
	caPath := filepath.Join(dir, "ca.crt")
	must(t, os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.srv.Certificate().Raw}), 0o644))
	tokenPath := filepath.Join(dir, "token")
	must(t, os.WriteFile(tokenPath, []byte("secret"), 0o600))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c2 := startChannel(ChannelOptions{URL: other.srv.URL, TokenFile: tokenPath, CAFile: caPath}, pf, log)
	defer c2.Close()
	other.push <- message(2, strings.Repeat("a", 64), `{"defaultAction":"allow","rules":[]}`)
	time.Sleep(300 * time.Millisecond)
	if _, tokens, _ := other.snapshot(); len(tokens) != 0 {
		t.Fatalf("the token was sent to an endpoint the CA did not sign: %v", tokens)
	}
	if allows(pf, "anything.example") {
		t.Fatal("a policy from an untrusted endpoint was applied")
	}
}

func impostorCert(t *testing.T) tls.Certificate {
	return selfSigned(t, "impostor", nil, []net.IP{net.ParseIP("127.0.0.1")})
}

// selfSigned: a certificate that is its own CA, for the names and addresses given.
func selfSigned(t *testing.T, cn string, dns []string, ips []net.IP) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: dns, IPAddresses: ips, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// The chart's endpoint: a certificate for the Service's DNS name only (its
// ClusterIP is assigned after the certificate is made), dialed by IP.
func TestChannelVerifiesTheServiceNameWhenDialedByIP(t *testing.T) {
	const service = "so-policy.ops.svc"
	cert := selfSigned(t, service, []string{service}, nil)
	for _, tc := range []struct {
		name       string
		serverName string
		trusted    bool
	}{
		{"the Service's name", service, true},
		{"no name: the IP is not in the certificate", "", false},
		{"another Service's name", "other-policy.ops.svc", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &fakeEndpoint{push: make(chan string, 16)}
			e.srv = httptest.NewUnstartedServer(http.HandlerFunc(e.serve))
			e.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
			e.srv.StartTLS()
			t.Cleanup(e.srv.Close)
			dir := t.TempDir()
			policyPath := filepath.Join(dir, "policy.json")
			must(t, os.WriteFile(policyPath, []byte(`{"defaultAction":"deny","rules":[]}`), 0o644))
			caPath := filepath.Join(dir, "ca.crt")
			must(t, os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644))
			tokenPath := filepath.Join(dir, "token")
			must(t, os.WriteFile(tokenPath, []byte("secret"), 0o600))
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			pf, err := WatchPolicyFile(policyPath, log, 20*time.Millisecond, nil)
			must(t, err)
			t.Cleanup(pf.Close)
			ch := startChannel(ChannelOptions{URL: e.srv.URL, TokenFile: tokenPath, CAFile: caPath, ServerName: tc.serverName}, pf, log)
			t.Cleanup(ch.Close)
			e.push <- message(2, strings.Repeat("b", 64), `{"defaultAction":"allow","rules":[]}`)
			if tc.trusted {
				waitFor(t, "the policy from the endpoint", func() bool { return allows(pf, "anything.example") })
				return
			}
			time.Sleep(300 * time.Millisecond)
			if _, tokens, _ := e.snapshot(); len(tokens) != 0 {
				t.Fatalf("the token was sent to an endpoint whose certificate does not name %q: %v", tc.serverName, tokens)
			}
			if allows(pf, "anything.example") {
				t.Fatal("a policy from an endpoint with the wrong name was applied")
			}
		})
	}
}

func TestForbiddenControllerAddress(t *testing.T) {
	ctl := netip.MustParseAddrPort("10.213.5.1:15090")
	for _, c := range []struct {
		addr string
		port int
		want bool
	}{{"10.213.5.1", 15090, true}, {"10.213.5.1", 443, false}, {"10.213.5.2", 15090, false}, {"::ffff:10.213.5.1", 15090, true}} {
		if got := forbidden(ctl, c.addr, c.port); got != c.want {
			t.Errorf("forbidden(%s:%d) = %v", c.addr, c.port, got)
		}
	}
	if forbidden(netip.AddrPort{}, "10.213.5.1", 15090) {
		t.Error("no controller, nothing forbidden")
	}
}
