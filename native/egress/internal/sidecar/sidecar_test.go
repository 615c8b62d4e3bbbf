package sidecar

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"sandboxing.dev/sandbox-egress/internal/logx"
)

// The sidecar on loopback, against a stand-in DNS server and origin servers:
// every proxy path, the DNS proxy, refusals and policy reload. (Redirects,
// the firewall and UIDs are the black-box suites' business: test/egress.)

type zoneServer struct {
	pc   net.PacketConn
	mu   sync.Mutex
	seen []string
	zone map[string]string // name -> A
}

func startZone(t *testing.T, zone map[string]string) *zoneServer {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	z := &zoneServer{pc: pc, zone: zone}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			name := strings.TrimSuffix(strings.ToLower(q.Name.String()), ".")
			z.mu.Lock()
			z.seen = append(z.seen, name)
			z.mu.Unlock()
			addr, ok := zone[name]
			rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true}
			if !ok {
				rh.RCode = dnsmessage.RCodeNameError
			}
			b := dnsmessage.NewBuilder(nil, rh)
			_ = b.StartQuestions()
			_ = b.Question(q)
			_ = b.StartAnswers()
			if ok && q.Type == dnsmessage.TypeA {
				ip := net.ParseIP(addr).To4()
				_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5}, dnsmessage.AResource{A: [4]byte(ip)})
			}
			out, _ := b.Finish()
			_, _ = pc.WriteTo(out, from)
		}
	}()
	return z
}

func (z *zoneServer) asked(name string) bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, n := range z.seen {
		if n == name {
			return true
		}
	}
	return false
}

// origin answers every request with "host path" and counts connections.
type origin struct {
	port  int
	mu    sync.Mutex
	conns int
}

func startOrigin(t *testing.T, withTLS bool) *origin {
	o := &origin{}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.port = ln.Addr().(*net.TCPAddr).Port
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s %s", r.Host, r.URL.RequestURI(), body)
		}),
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateNew {
				o.mu.Lock()
				o.conns++
				o.mu.Unlock()
			}
		},
	}
	if withTLS {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSigned(t, "test", []string{"allowed.test"}, nil)}}
		go func() { _ = srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { _ = srv.Serve(ln) }()
	}
	t.Cleanup(func() { srv.Close() })
	return o
}

func (o *origin) connections() int { o.mu.Lock(); defer o.mu.Unlock(); return o.conns }

type fixture struct {
	s          *Sidecar
	zone       *zoneServer
	web, https *origin
	policyFile string
	log        *strings.Builder
}

func start(t *testing.T, policyText string) *fixture {
	zone := startZone(t, map[string]string{
		"allowed.test": "127.0.0.1", "denied.test": "127.0.0.1", "rebind.test": "169.254.169.254",
	})
	web, https := startOrigin(t, false), startOrigin(t, true)
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(file, []byte(policyText), 0o644); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	var logMu sync.Mutex
	s, err := Start(Options{
		Sandbox: "ns/t", PolicyFile: file, UpstreamDNS: zone.pc.LocalAddr().String(),
		Ports:            Ports{Health: -1},
		DestinationPorts: DestinationPorts{HTTP: web.port, TLS: https.port},
		Log:              logx.New(lockedWriter{&logMu, &log}),
		Poll:             50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &fixture{s: s, zone: zone, web: web, https: https, policyFile: file, log: &log}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// 127.0.0.1 stands in for the internet: as a reserved address it needs its own rule.
const basePolicy = `
defaultAction: deny
rules:
  - {action: allow, target: allowed.test}
  - {action: allow, target: rebind.test}
  - {action: allow, target: 127.0.0.1}
`

func raw(t *testing.T, port int, request string) string {
	c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(c)
	return string(out)
}

func statuses(t *testing.T, text string) []int {
	br := bufio.NewReader(strings.NewReader(text))
	var out []int
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		_, _ = io.ReadAll(resp.Body)
		out = append(out, resp.StatusCode)
	}
}

func TestExplicitProxy(t *testing.T) {
	f := start(t, basePolicy)
	proxy := f.s.Bound.Proxy
	get := fmt.Sprintf("GET http://allowed.test:%d/p?q=1 HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n", f.web.port)
	if out := raw(t, proxy, get); !strings.Contains(out, "200 OK") || !strings.Contains(out, fmt.Sprintf("allowed.test:%d /p?q=1", f.web.port)) {
		t.Fatalf("absolute GET: %q", out)
	}
	// CONNECT: allowed name, then bytes flow both ways.
	c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", proxy))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT allowed.test:%d HTTP/1.1\r\nHost: allowed.test\r\n\r\n", f.web.port)
	br := bufio.NewReader(c)
	line, _ := br.ReadString('\n')
	if !strings.Contains(line, "200") {
		t.Fatalf("CONNECT: %q", line)
	}
	_, _ = br.ReadString('\n')
	fmt.Fprintf(c, "GET /tunnel HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "x /tunnel") {
		t.Fatalf("through the tunnel: %q", rest)
	}

	before := f.web.connections()
	for _, tc := range []struct{ req, want string }{
		{"CONNECT denied.test:443 HTTP/1.1\r\n\r\n", "denied by the default action"},
		{fmt.Sprintf("GET http://rebind.test:%d/ HTTP/1.1\r\nHost: rebind.test\r\n\r\n", f.web.port), "reserved-address"},
		{"GET http://203.0.113.5/ HTTP/1.1\r\nHost: 203.0.113.5\r\n\r\n", "denied by the default action"},
		{"GET http://10.1.2.3/ HTTP/1.1\r\nHost: 10.1.2.3\r\n\r\n", "reserved-address"},
		{"GET /relative HTTP/1.1\r\nHost: allowed.test\r\n\r\n", "absolute http:// URI"},
		{"CONNECT allowed.test HTTP/1.1\r\n\r\n", "CONNECT needs host:port"},
	} {
		if out := raw(t, proxy, tc.req); !strings.Contains(out, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.req, out, tc.want)
		}
	}
	if f.web.connections() != before {
		t.Errorf("a refused request reached the origin")
	}
	if f.zone.asked("denied.test") {
		t.Errorf("a denied name was resolved upstream")
	}
	if !strings.Contains(f.log.String(), `"msg":"egress denied"`) || !strings.Contains(f.log.String(), `"rule":"reserved-address"`) {
		t.Errorf("decision lines missing: %s", f.log.String())
	}
}

func TestTransparentHTTPJudgesEachRequest(t *testing.T) {
	f := start(t, basePolicy)
	req := func(target string, hosts ...string) string {
		s := "GET " + target + " HTTP/1.1\r\n"
		for _, h := range hosts {
			s += "Host: " + h + "\r\n"
		}
		return s
	}
	last, more := "Connection: close\r\n\r\n", "\r\n"
	for _, tc := range []struct {
		request string
		want    []int
	}{
		{req("/", "allowed.test") + last, []int{200}},
		{req("/", "allowed.test", "denied.test") + last, []int{400}},
		{req("http://denied.test/", "allowed.test") + last, []int{400}},
		{req("http://allowed.test/abs", "allowed.test") + last, []int{200}},
		{req("/1", "allowed.test") + more + req("/2", "denied.test") + last, []int{200, 403}},
		{req("/1", "allowed.test") + more + req("/2", "allowed.test") + last, []int{200, 200}},
		{"POST /b HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 5\r\n\r\nhello" + req("/2", "denied.test") + last, []int{200, 403}},
		{"POST /c HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n", []int{200}},
		{"CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test\r\n\r\n", []int{405}},
		{req("/") + last, []int{400}},
	} {
		out := raw(t, f.s.Bound.HTTP, tc.request)
		if got := statuses(t, out); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%q: got %v, want %v\n%s", tc.request, got, tc.want, out)
		}
	}
	chunked := raw(t, f.s.Bound.HTTP, "POST /c HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	if !strings.Contains(chunked, "allowed.test /c hello") {
		t.Errorf("chunked body not forwarded: %q", chunked)
	}
}

func TestTransparentTLSBySNI(t *testing.T) {
	f := start(t, basePolicy)
	addr := fmt.Sprintf("127.0.0.1:%d", f.s.Bound.TLS)
	conn, err := tls.Dial("tcp4", addr, &tls.Config{ServerName: "allowed.test", InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("allowed SNI: %v", err)
	}
	fmt.Fprintf(conn, "GET /tls HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
	body, _ := io.ReadAll(conn)
	conn.Close()
	if !strings.Contains(string(body), "allowed.test /tls") {
		t.Fatalf("through TLS: %q", body)
	}
	before := f.https.connections()
	for _, name := range []string{"denied.test", ""} {
		c, err := tls.Dial("tcp4", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
		if err == nil {
			c.Close()
			t.Errorf("SNI %q: handshake succeeded", name)
		}
	}
	if f.https.connections() != before {
		t.Errorf("a refused ClientHello reached the origin")
	}
}

func dnsAsk(t *testing.T, port int, name string, qtype dnsmessage.Type) dnsmessage.Header {
	c, err := net.Dial("udp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q, _ := buildQuery(1234, dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: qtype, Class: dnsmessage.ClassINET}, false, 0)
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	_, _ = c.Write(q)
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	var p dnsmessage.Parser
	h, err := p.Start(buf[:n])
	if err != nil || h.ID != 1234 {
		t.Fatalf("bad answer %v %v", h, err)
	}
	return h
}

func TestDNSProxy(t *testing.T) {
	f := start(t, basePolicy)
	if h := dnsAsk(t, f.s.Bound.DNS, "Allowed.Test.", dnsmessage.TypeA); h.RCode != dnsmessage.RCodeSuccess {
		t.Errorf("allowed: %v", h.RCode)
	}
	if h := dnsAsk(t, f.s.Bound.DNS, "secret.exfil.test.", dnsmessage.TypeTXT); h.RCode != dnsmessage.RCodeNameError {
		t.Errorf("denied: %v", h.RCode)
	}
	if h := dnsAsk(t, f.s.Bound.DNS, "allowed.test.", dnsmessage.TypeAAAA); h.RCode != dnsmessage.RCodeSuccess {
		t.Errorf("AAAA: %v", h.RCode)
	}
	if f.zone.asked("secret.exfil.test") {
		t.Error("a denied name reached the upstream")
	}
	if !f.zone.asked("allowed.test") {
		t.Error("an allowed name did not reach the upstream")
	}
}

func TestPolicyReloadAndFailClosed(t *testing.T) {
	f := start(t, basePolicy)
	write := func(text string) {
		tmp := f.policyFile + ".tmp"
		_ = os.WriteFile(tmp, []byte(text), 0o644)
		_ = os.Rename(tmp, f.policyFile)
	}
	eventually := func(what string, ok func() bool) {
		deadline := time.Now().Add(5 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("never: %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	status := func(host string) []int {
		return statuses(t, raw(t, f.s.Bound.HTTP, "GET / HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n"))
	}
	write(basePolicy + "  - {action: allow, target: denied.test}\n")
	eventually("denied.test allowed", func() bool { return fmt.Sprint(status("denied.test")) == "[200]" })
	write("rules: [{action: allow, target: 'not a name'}]\n")
	eventually("everything denied", func() bool { return fmt.Sprint(status("allowed.test")) == "[403]" })
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", f.s.Bound.Metrics))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), "rules[0].target") {
		t.Errorf("readyz: %d %q", resp.StatusCode, body)
	}
	write(basePolicy)
	eventually("allowed again", func() bool { return fmt.Sprint(status("allowed.test")) == "[200]" })
	m, _ := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", f.s.Bound.Metrics))
	text, _ := io.ReadAll(m.Body)
	m.Body.Close()
	if !strings.Contains(string(text), `sandbox_egress_decisions_total{verdict="deny",protocol="http"}`) {
		t.Errorf("metrics: %s", text)
	}
}
