package policy

import (
	"regexp"
	"strings"
)

// Same pattern as the CRD's CEL rule (RE2, so Go and the apiserver agree).
var (
	dnsNamePattern   = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*\.?$`)
	numericLastLabel = regexp.MustCompile(`(^|\.)[0-9]+\.?$`)
)

// IsPolicyDNSName reports whether raw is a DNS name the CRD accepts as a target.
// A last label of digits only would make "1.2.3.999" a name; the CRD refuses it.
func IsPolicyDNSName(raw string) bool {
	return dnsNamePattern.MatchString(raw) && !numericLastLabel.MatchString(raw)
}

// NormalizeName folds ASCII letters only (RFC 4343; Unicode folding would let
// the Kelvin sign match "k") and drops one trailing dot.
func NormalizeName(raw string) string {
	b := []byte(raw)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	s := string(b)
	return strings.TrimSuffix(s, ".")
}
