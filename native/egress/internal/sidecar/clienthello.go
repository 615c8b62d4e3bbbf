package sidecar

import (
	"encoding/binary"
	"errors"
	"regexp"
)

// Read the server name (SNI) from a TLS ClientHello without terminating TLS
// (RFC 8446 §4.1.2, RFC 6066 §3). Handles a ClientHello split over several
// records (allowed, and used to dodge naive SNI filters), bytes arriving one
// at a time, and malformed or oversized input, without panicking.

const (
	recordHandshake      = 22
	handshakeClientHello = 1
	extensionServerName  = 0
	nameTypeHost         = 0
	maxClientHelloBytes  = 64 * 1024
	helloIncomplete      = "incomplete"
	helloComplete        = "client-hello"
	helloInvalid         = "invalid"
)

var hostName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,253}$`)

type helloResult struct {
	kind       string
	serverName string
	reason     string
}

func parseClientHello(data []byte) helloResult {
	msg, res := reassembleHandshake(data)
	if res.kind != "" {
		return res
	}
	name, err := parseHello(msg)
	if err != nil {
		return helloResult{kind: helloInvalid, reason: err.Error()}
	}
	return helloResult{kind: helloComplete, serverName: name}
}

func reassembleHandshake(data []byte) ([]byte, helloResult) {
	var joined []byte
	offset := 0
	for offset+5 <= len(data) {
		typ, major := data[offset], data[offset+1]
		length := int(binary.BigEndian.Uint16(data[offset+3:]))
		if typ != recordHandshake {
			return nil, helloResult{kind: helloInvalid, reason: "not a TLS handshake record"}
		}
		if major != 3 {
			return nil, helloResult{kind: helloInvalid, reason: "not TLS (record version)"}
		}
		if length == 0 || length > 16384+2048 {
			return nil, helloResult{kind: helloInvalid, reason: "bad record length"}
		}
		end := offset + 5 + length
		joined = append(joined, data[offset+5:min(end, len(data))]...)
		offset = end
		if len(joined) >= 4 {
			if joined[0] != handshakeClientHello {
				return nil, helloResult{kind: helloInvalid, reason: "not a ClientHello"}
			}
			needed := 4 + (int(joined[1])<<16 | int(joined[2])<<8 | int(joined[3]))
			if needed > maxClientHelloBytes {
				return nil, helloResult{kind: helloInvalid, reason: "ClientHello too large"}
			}
			if len(joined) >= needed {
				return joined[4:needed], helloResult{}
			}
		}
		if end > len(data) {
			break
		}
	}
	if len(data) > maxClientHelloBytes+1024 {
		return nil, helloResult{kind: helloInvalid, reason: "ClientHello too large"}
	}
	if len(data) > 0 && data[0] != recordHandshake {
		return nil, helloResult{kind: helloInvalid, reason: "not a TLS handshake record"}
	}
	return nil, helloResult{kind: helloIncomplete}
}

var errTruncated = errors.New("malformed ClientHello")

type reader struct{ b []byte }

func (r *reader) take(n int) []byte {
	if n < 0 || n > len(r.b) {
		panic(errTruncated)
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}
func (r *reader) u8() int  { return int(r.take(1)[0]) }
func (r *reader) u16() int { return int(binary.BigEndian.Uint16(r.take(2))) }
func (r *reader) vector(lengthBytes int) *reader {
	n := 0
	if lengthBytes == 1 {
		n = r.u8()
	} else {
		n = r.u16()
	}
	return &reader{r.take(n)}
}

func parseHello(body []byte) (name string, err error) {
	defer func() {
		if p := recover(); p != nil {
			name, err = "", errTruncated
		}
	}()
	r := &reader{body}
	r.take(2 + 32) // legacy_version, random
	r.vector(1)    // legacy_session_id
	r.vector(2)    // cipher_suites
	r.vector(1)    // legacy_compression_methods
	if len(r.b) == 0 {
		return "", nil // no extensions at all
	}
	exts := r.vector(2)
	seen := map[int]bool{}
	for len(exts.b) > 0 {
		typ := exts.u16()
		data := exts.vector(2)
		// A repeated extension is a protocol error; two SNI extensions could
		// make the proxy and the server disagree about the name.
		if seen[typ] {
			return "", errors.New("duplicate extension " + itoa16(typ))
		}
		seen[typ] = true
		if typ == extensionServerName {
			n, ok := parseServerName(data)
			if !ok {
				return "", errors.New("malformed server_name")
			}
			name = n
		}
	}
	return name, nil
}

func parseServerName(data *reader) (string, bool) {
	list := data.vector(2)
	if len(data.b) != 0 {
		return "", false
	}
	host := ""
	for len(list.b) > 0 {
		typ := list.u8()
		name := list.vector(2).b
		if typ != nameTypeHost {
			continue
		}
		if host != "" {
			return "", false // RFC 6066: at most one host_name
		}
		if !hostName.Match(name) {
			return "", false
		}
		host = string(name)
	}
	return host, host != ""
}

func itoa16(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}
