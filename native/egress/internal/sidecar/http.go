package sidecar

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"time"

	"sandboxing.dev/sandbox-egress/internal/policy"
)

// HTTP on the explicit proxy (CONNECT host:port, absolute http:// requests)
// and on the transparent port-80 listener (judged by Host). Each request is
// judged and dialed on its own, and forwarded on a fresh upstream connection
// with "connection: close": piping a kept-alive connection would let a second
// request with another Host ride on the first one's connection. The request
// head is read raw first, so that every Host line is seen (Go's parser keeps
// one), then parsed by net/http for the body's framing.

const (
	// maxHead bounds a request head (Node's default limit too); it is also
	// the read buffer per client connection, so it stays small.
	maxHead = 16 * 1024
	// idleTimeout: how long a kept-alive client connection may wait for its
	// next request (or a slow one for its head).
	idleTimeout = time.Minute
)

type httpMode int

const (
	modeExplicit httpMode = iota
	modeTransparent
)

// hopByHop (RFC 9110 §7.6.1) plus the proxy's own.
var hopByHop = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-connection": true, "proxy-authorization": true,
	"proxy-authenticate": true, "te": true, "trailer": true, "transfer-encoding": true, "upgrade": true,
}

var statusText = map[int]string{400: "Bad Request", 403: "Forbidden", 405: "Method Not Allowed", 502: "Bad Gateway", 504: "Gateway Timeout"}

// refuse writes a whole plain-text response naming the reason; the caller closes.
func refuse(w io.Writer, status int, message string) {
	body := message + "\n"
	text := statusText[status]
	if text == "" {
		text = "Error"
	}
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s", status, text, len(body), body)
}

// rawHead is the request head as received, still unconsumed in br.
func peekHead(br *bufio.Reader) ([]byte, error) {
	for {
		buf, _ := br.Peek(br.Buffered())
		if i := bytes.Index(buf, []byte("\n\r\n")); i >= 0 {
			if j := bytes.Index(buf, []byte("\n\n")); j >= 0 && j < i {
				return buf[:j+2], nil
			}
			return buf[:i+3], nil
		}
		if i := bytes.Index(buf, []byte("\n\n")); i >= 0 {
			return buf[:i+2], nil
		}
		if br.Buffered() >= maxHead {
			return nil, errors.New("request head too large")
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return nil, err
		}
	}
}

type rawRequest struct {
	method, target string
	hosts          []string
}

func parseRawHead(head []byte) (rawRequest, bool) {
	lines := strings.Split(strings.ReplaceAll(string(head), "\r\n", "\n"), "\n")
	parts := strings.Split(lines[0], " ")
	if len(parts) != 3 {
		return rawRequest{}, false
	}
	r := rawRequest{method: parts[0], target: parts[1]}
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(name, "host") {
			r.hosts = append(r.hosts, strings.Trim(value, " \t"))
		}
	}
	return r, true
}

// forwardTarget is where a judged request goes.
type forwardTarget struct {
	host string
	port int
	path string
	// hostHeader replaces the Host header (explicit proxy: the URI's authority wins).
	hostHeader string
}

type refusal struct {
	status int
	reason string
}

var absoluteScheme = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`)

// transparentTarget reads a port-80 request as an origin server would (RFC
// 9112 §3.2, §3.3): exactly one Host, and in absolute form its authority,
// which must agree with Host. Anything a server could route differently from
// what the proxy judged is refused.
func transparentTarget(r rawRequest, port int) (forwardTarget, *refusal) {
	if len(r.hosts) > 1 {
		return forwardTarget{}, &refusal{400, "more than one Host header"}
	}
	if len(r.hosts) == 0 {
		return forwardTarget{}, &refusal{400, "a Host header naming the destination is required"}
	}
	hhost, hport, ok := parseAuthority(r.hosts[0], port)
	if !ok {
		return forwardTarget{}, &refusal{400, "a Host header naming the destination is required"}
	}
	if strings.HasPrefix(r.target, "/") || r.target == "*" {
		return forwardTarget{host: hhost, port: port, path: r.target}, nil
	}
	m := absoluteScheme.FindStringSubmatch(r.target)
	if m == nil {
		return forwardTarget{}, &refusal{400, "the request-target is neither origin-form nor absolute-form"}
	}
	if !strings.EqualFold(m[1], "http") {
		return forwardTarget{}, &refusal{400, fmt.Sprintf("an absolute-form request-target on port %d must be http://", port)}
	}
	u, err := url.Parse(r.target)
	if err != nil {
		return forwardTarget{}, &refusal{400, "malformed absolute-form request-target"}
	}
	if u.User != nil {
		return forwardTarget{}, &refusal{400, "userinfo in the request-target is not accepted"}
	}
	written := r.target[len(m[0]):]
	if i := strings.IndexAny(written, "/?#"); i >= 0 {
		written = written[:i]
	}
	ahost, aport, ok := parseAuthority(written, port)
	if !ok {
		return forwardTarget{}, &refusal{400, "malformed authority in the request-target"}
	}
	if policy.NormalizeName(strings.ToLower(ahost)) != policy.NormalizeName(strings.ToLower(hhost)) || aport != hport {
		return forwardTarget{}, &refusal{400, fmt.Sprintf("the request-target's authority (%s) disagrees with the Host header (%s)", written, r.hosts[0])}
	}
	return forwardTarget{host: ahost, port: port, path: originForm(u)}, nil
}

func originForm(u *url.URL) string {
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if u.RawQuery != "" || u.ForceQuery {
		path += "?" + u.RawQuery
	}
	return path
}

// explicitTarget: an absolute http:// URI through the proxy.
func explicitTarget(target string) (forwardTarget, bool) {
	if !strings.HasPrefix(target, "http://") {
		return forwardTarget{}, false
	}
	u, err := url.Parse(target)
	if err != nil || u.User != nil {
		return forwardTarget{}, false
	}
	hostHeader := strings.ToLower(u.Host)
	hostHeader = strings.TrimSuffix(hostHeader, ":80")
	host, port, ok := parseAuthority(hostHeader, 80)
	if !ok {
		return forwardTarget{}, false
	}
	return forwardTarget{host: host, port: port, path: originForm(u), hostHeader: hostHeader}, true
}

func (s *Sidecar) serveHTTP(conn *net.TCPConn, mode httpMode, port int) {
	defer conn.Close()
	br := bufio.NewReaderSize(conn, maxHead)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(idleTimeout))
		head, err := peekHead(br)
		if err != nil {
			if br.Buffered() >= maxHead {
				refuse(conn, 400, err.Error())
			}
			return
		}
		raw, ok := parseRawHead(head)
		if !ok {
			refuse(conn, 400, "malformed request line")
			return
		}
		var target forwardTarget
		proto := ProtoHTTP
		if mode == modeTransparent {
			if raw.method == http.MethodConnect {
				refuse(conn, 405, "CONNECT is served by the explicit proxy, not on port 80")
				return
			}
			t, bad := transparentTarget(raw, port)
			if bad != nil {
				target := "<none>"
				if len(raw.hosts) > 0 {
					target = raw.hosts[0]
				}
				s.decisions.Record(Decision{Protocol: ProtoHTTP, Target: target, Port: port,
					Verdict: policy.Decision{Verdict: policy.Deny, Rule: policy.RefDefault}, Reason: bad.reason})
				refuse(conn, bad.status, bad.reason)
				return
			}
			target = t
		} else {
			if raw.method == http.MethodConnect {
				s.tunnel(conn, br, raw.target)
				return
			}
			t, ok := explicitTarget(raw.target)
			if !ok {
				refuse(conn, 400, "this proxy takes CONNECT host:port or an absolute http:// URI")
				return
			}
			target, proto = t, ProtoProxyHTTP
		}
		_ = conn.SetReadDeadline(time.Time{})
		req, err := http.ReadRequest(br)
		if err != nil {
			refuse(conn, 400, "malformed request: "+err.Error())
			return
		}
		if !s.forward(conn, br, req, proto, target) {
			return
		}
	}
}

// tunnel answers CONNECT host:port: judged by host and port; opaque after.
func (s *Sidecar) tunnel(conn *net.TCPConn, br *bufio.Reader, authority string) {
	// Consume the head (CONNECT carries no body).
	if _, err := http.ReadRequest(br); err != nil {
		refuse(conn, 400, "malformed CONNECT request")
		return
	}
	host, port, ok := parseAuthority(authority, 0)
	if !ok {
		refuse(conn, 400, "CONNECT needs host:port")
		return
	}
	upstream, err := s.dialer.dial(ProtoProxyConnect, host, port)
	if err != nil {
		writeDialRefusal(conn, err)
		return
	}
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection Established\r\n\r\n"); err != nil {
		upstream.Close()
		return
	}
	splice(conn, br, upstream)
}

func writeDialRefusal(w io.Writer, err error) {
	var de *dialError
	if errors.As(err, &de) {
		refuse(w, de.status, de.message)
		return
	}
	refuse(w, 502, err.Error())
}

// forwardedHeaders drops hop-by-hop headers and those Connection names (kept
// for an upgrade, which needs them; proxy-* always go).
func forwardedHeaders(h http.Header, upgrade bool) http.Header {
	named := map[string]bool{}
	for _, v := range h.Values("Connection") {
		for _, token := range strings.Split(v, ",") {
			named[strings.ToLower(strings.TrimSpace(token))] = true
		}
	}
	out := http.Header{}
	for k, vs := range h {
		lk := strings.ToLower(k)
		if lk == "host" || lk == "content-length" {
			continue
		}
		if upgrade {
			if strings.HasPrefix(lk, "proxy-") {
				continue
			}
		} else if hopByHop[lk] || named[lk] {
			continue
		}
		out[k] = vs
	}
	return out
}

func isUpgrade(req *http.Request) bool {
	if req.Header.Get("Upgrade") == "" {
		return false
	}
	for _, v := range req.Header.Values("Connection") {
		for _, token := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(token), "upgrade") {
				return true
			}
		}
	}
	return false
}

// forward sends one request upstream and its response back; false when the
// client connection must close afterwards.
func (s *Sidecar) forward(conn *net.TCPConn, br *bufio.Reader, req *http.Request, proto Protocol, t forwardTarget) bool {
	upstream, err := s.dialer.dial(proto, t.host, t.port)
	if err != nil {
		writeDialRefusal(conn, err)
		return false
	}
	defer upstream.Close()
	host := req.Host
	if t.hostHeader != "" {
		host = t.hostHeader
	}
	upgrade := isUpgrade(req)
	headers := forwardedHeaders(req.Header, upgrade)
	uw := bufio.NewWriter(upstream)
	fmt.Fprintf(uw, "%s %s HTTP/1.1\r\nHost: %s\r\n", req.Method, t.path, host)
	_ = headers.Write(uw)
	if upgrade {
		io.WriteString(uw, "\r\n")
		if uw.Flush() != nil {
			return false
		}
		splice(conn, br, upstream)
		return false
	}
	chunked := req.ContentLength < 0
	switch {
	case chunked:
		io.WriteString(uw, "Transfer-Encoding: chunked\r\n")
	case req.ContentLength > 0 || req.Header.Get("Content-Length") != "":
		fmt.Fprintf(uw, "Content-Length: %d\r\n", req.ContentLength)
	}
	io.WriteString(uw, "Connection: close\r\n\r\n")
	bodyDone := make(chan error, 1)
	go func() {
		var err error
		if chunked {
			cw := httputil.NewChunkedWriter(uw)
			if _, err = io.Copy(cw, req.Body); err == nil {
				if err = cw.Close(); err == nil {
					_, err = io.WriteString(uw, "\r\n")
				}
			}
		} else if req.Body != nil {
			_, err = io.Copy(uw, req.Body)
		}
		if err == nil {
			err = uw.Flush()
		}
		bodyDone <- err
	}()
	ubr := bufio.NewReader(upstream)
	for {
		resp, err := http.ReadResponse(ubr, req)
		if err != nil {
			refuse(conn, 502, fmt.Sprintf("%s:%d: %v", t.host, t.port, err))
			return false
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != 101 {
			fmt.Fprintf(conn, "HTTP/1.1 %s\r\n", resp.Status)
			_ = forwardedHeaders(resp.Header, false).Write(conn)
			io.WriteString(conn, "\r\n")
			continue
		}
		keep := s.writeResponse(conn, req, resp)
		resp.Body.Close()
		if err := <-bodyDone; err != nil {
			return false
		}
		return keep && !req.Close
	}
}

// writeResponse relays the status, the end-to-end headers and the body,
// framed for the client; false when the connection must close after it.
func (s *Sidecar) writeResponse(conn net.Conn, req *http.Request, resp *http.Response) bool {
	cw := bufio.NewWriterSize(conn, 32*1024)
	fmt.Fprintf(cw, "HTTP/1.1 %s\r\n", resp.Status)
	_ = forwardedHeaders(resp.Header, false).Write(cw)
	noBody := req.Method == http.MethodHead || resp.StatusCode == 204 || resp.StatusCode == 304
	keep := req.ProtoAtLeast(1, 1)
	switch {
	case noBody:
		if v := resp.Header.Get("Content-Length"); v != "" {
			fmt.Fprintf(cw, "Content-Length: %s\r\n", v)
		}
		io.WriteString(cw, "\r\n")
		return cw.Flush() == nil && keep
	case resp.ContentLength >= 0:
		fmt.Fprintf(cw, "Content-Length: %d\r\n\r\n", resp.ContentLength)
		if _, err := io.Copy(cw, resp.Body); err != nil {
			return false
		}
		return cw.Flush() == nil && keep
	case keep:
		io.WriteString(cw, "Transfer-Encoding: chunked\r\n\r\n")
		w := httputil.NewChunkedWriter(cw)
		if _, err := io.Copy(w, resp.Body); err != nil {
			return false
		}
		w.Close()
		io.WriteString(cw, "\r\n")
		return cw.Flush() == nil
	default:
		io.WriteString(cw, "Connection: close\r\n\r\n")
		_, _ = io.Copy(cw, resp.Body)
		_ = cw.Flush()
		return false
	}
}
