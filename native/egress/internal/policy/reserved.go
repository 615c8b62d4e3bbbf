package policy

import "fmt"

// DefaultReservedRanges are not "the internet": a name resolving into one (DNS
// rebinding, a hostile zone) or an IP literal inside one is refused unless an
// address rule allows it. Keeps metadata, the node and cluster services out of
// reach of an "allow *.example.com" policy. Same list as the TypeScript policy
// (the shared vectors check it).
var DefaultReservedRanges = []string{
	"0.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
	"127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
	"::/128", "::1/128", "fe80::/10", "fc00::/7", "ff00::/8",
}

// ReservedRanges builds the set; nil means the defaults.
func ReservedRanges(cidrs []string) (*CIDRSet, error) {
	if cidrs == nil {
		cidrs = DefaultReservedRanges
	}
	s := &CIDRSet{}
	for _, text := range cidrs {
		p, ok := ParseCIDR(text)
		if !ok {
			return nil, fmt.Errorf("reserved range %q is not a CIDR", text)
		}
		s.prefixes = append(s.prefixes, p)
	}
	return s, nil
}
