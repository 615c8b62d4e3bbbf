package policy

import (
	"net/netip"
	"strings"
	"unicode/utf16"
)

// TargetKind classifies a rule's target.
type TargetKind int

const (
	// TargetName matches this name only.
	TargetName TargetKind = iota
	// TargetWildcard ("*.example.org") matches names below the apex at any
	// depth, never the apex itself.
	TargetWildcard
	// TargetAddress (an IP or CIDR) matches addresses of its own family only.
	TargetAddress
)

type Target struct {
	Kind   TargetKind
	Name   string // TargetName: the normalised name
	Suffix string // TargetWildcard: "." + normalised apex
	Prefix netip.Prefix
}

// TargetReason is why a target is refused (same words as the TypeScript policy).
const TargetReason = `is not a DNS name, a "*." wildcard, an IP address or a CIDR`

// MaxTargetLength is the CRD's maxLength on target (counted as the apiserver
// and JavaScript count: UTF-16 code units).
const MaxTargetLength = 253

func jsLength(s string) int { return len(utf16.Encode([]rune(s))) }

// ParseTarget accepts exactly what the CRD's CEL rule accepts.
func ParseTarget(raw string) (Target, bool) {
	if n := jsLength(raw); n < 1 || n > MaxTargetLength {
		return Target{}, false
	}
	if apexText, ok := strings.CutPrefix(raw, "*."); ok {
		if !IsPolicyDNSName(apexText) {
			return Target{}, false
		}
		return Target{Kind: TargetWildcard, Suffix: "." + NormalizeName(apexText)}, true
	}
	if strings.Contains(raw, "/") {
		p, ok := ParseCIDR(raw)
		return Target{Kind: TargetAddress, Prefix: p}, ok
	}
	if a, ok := ParseIPLiteral(raw); ok {
		return Target{Kind: TargetAddress, Prefix: netip.PrefixFrom(a, a.BitLen())}, true
	}
	if IsPolicyDNSName(raw) {
		return Target{Kind: TargetName, Name: NormalizeName(raw)}, true
	}
	return Target{}, false
}
