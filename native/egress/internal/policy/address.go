// IP literals and CIDRs, parsed the way the CRD's CEL rule (Go's netip) accepts
// them: no zone, no IPv4-mapped IPv6, no leading zeros, a prefix length without
// leading zeros. Host bits in a CIDR are allowed; the canonical form masks them
// off, which is also what iptables stores.
package policy

import (
	"net/netip"
	"strconv"
	"strings"
)

// ParseIPLiteral parses an IP literal as the CRD accepts it.
func ParseIPLiteral(raw string) (netip.Addr, bool) {
	if strings.Contains(raw, "%") {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(raw)
	if err != nil || a.Is4In6() {
		return netip.Addr{}, false
	}
	return a, true
}

// ParseCIDR parses "addr/bits" as the CRD accepts it; the result is masked.
func ParseCIDR(raw string) (netip.Prefix, bool) {
	addrText, bitsText, ok := strings.Cut(raw, "/")
	if !ok {
		return netip.Prefix{}, false
	}
	a, ok := ParseIPLiteral(addrText)
	if !ok || !validBits(bitsText) {
		return netip.Prefix{}, false
	}
	bits, _ := strconv.Atoi(bitsText)
	if bits > a.BitLen() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, bits).Masked(), true
}

// validBits: "0" or 1-3 digits without a leading zero.
func validBits(s string) bool {
	if s == "0" {
		return true
	}
	if len(s) < 1 || len(s) > 3 || s[0] < '1' || s[0] > '9' {
		return false
	}
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// NormalizeAddress is the canonical form of an address met at run time (a
// socket's peer, a Host header, a DNS answer): brackets and zone dropped,
// IPv4-mapped IPv6 turned into IPv4 so "::ffff:10.0.0.1" is judged exactly
// like "10.0.0.1". ok is false when raw is not an IP address.
func NormalizeAddress(raw string) (netip.Addr, bool) {
	text := raw
	if strings.HasPrefix(text, "[") && strings.HasSuffix(text, "]") {
		text = text[1 : len(text)-1]
	}
	if i := strings.IndexByte(text, '%'); i >= 0 {
		text = text[:i]
	}
	a, err := netip.ParseAddr(text)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// CIDRSet tests membership in a set of prefixes; a prefix only ever matches
// addresses of its own family ("::/0" never holds an IPv4 address).
type CIDRSet struct{ prefixes []netip.Prefix }

func NewCIDRSet(p ...netip.Prefix) *CIDRSet { return &CIDRSet{prefixes: p} }

// Has reports whether a (normalised) address is in the set.
func (s *CIDRSet) Has(a netip.Addr) bool {
	for _, p := range s.prefixes {
		if p.Addr().Is4() == a.Is4() && p.Contains(a) {
			return true
		}
	}
	return false
}

func (s *CIDRSet) Prefixes() []netip.Prefix { return s.prefixes }

// FormatCIDR is "10.20.0.0/16"; a single address keeps its full-length prefix.
func FormatCIDR(p netip.Prefix) string { return p.String() }
