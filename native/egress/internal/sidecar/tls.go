package sidecar

import (
	"bytes"
	"net"
	"time"

	"sandboxing.dev/sandbox-egress/internal/policy"
)

// The transparent listener for the workload's port-443 traffic (redirected by
// the lockdown). It reads the ClientHello, judges the SNI name, connects to
// the name's own address and replays the bytes; TLS stays end to end. A
// ClientHello without SNI (a client dialing a bare IP) is refused: there is no
// name to judge, and the original address is never used.

const clientHelloTimeout = 10 * time.Second

func (s *Sidecar) serveTLS(client *net.TCPConn, port int) {
	refuse := func(reason string) {
		s.decisions.Record(Decision{Protocol: ProtoTLS, Target: "<none>", Port: port,
			Verdict: policy.Decision{Verdict: policy.Deny, Rule: policy.RefDefault}, Reason: reason})
		client.Close()
	}
	_ = client.SetReadDeadline(time.Now().Add(clientHelloTimeout))
	var buf bytes.Buffer
	chunk := make([]byte, 4096)
	var hello helloResult
	for {
		n, err := client.Read(chunk)
		buf.Write(chunk[:n])
		if n > 0 {
			hello = parseClientHello(buf.Bytes())
			if hello.kind != helloIncomplete {
				break
			}
		}
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				refuse("no ClientHello in time")
			} else {
				refuse("connection closed before the ClientHello")
			}
			return
		}
	}
	if hello.kind == helloInvalid {
		refuse(hello.reason)
		return
	}
	if hello.serverName == "" {
		refuse("ClientHello without SNI")
		return
	}
	_ = client.SetReadDeadline(time.Time{})
	upstream, err := s.dialer.dial(ProtoTLS, hello.serverName, port)
	if err != nil {
		client.Close()
		return
	}
	if _, err := upstream.Write(buf.Bytes()); err != nil {
		client.Close()
		upstream.Close()
		return
	}
	splice(client, client, upstream)
}
