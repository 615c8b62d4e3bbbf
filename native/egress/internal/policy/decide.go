package policy

import (
	"net/netip"
	"strconv"
	"strings"
)

// RuleRef is which rule decided: its index, "default", or "reserved-address".
type RuleRef struct {
	Index int
	Other string // "default" or "reserved-address" when not a rule
}

var (
	RefDefault  = RuleRef{Index: -1, Other: "default"}
	RefReserved = RuleRef{Index: -1, Other: "reserved-address"}
)

func RefRule(i int) RuleRef { return RuleRef{Index: i} }

// MarshalJSON writes a number for a rule, a string otherwise (as the logs and
// the TypeScript policy do).
func (r RuleRef) MarshalJSON() ([]byte, error) {
	if r.Other != "" {
		return []byte(strconv.Quote(r.Other)), nil
	}
	return []byte(strconv.Itoa(r.Index)), nil
}

func (r RuleRef) String() string {
	if r.Other != "" {
		return r.Other
	}
	return strconv.Itoa(r.Index)
}

type Decision struct {
	Verdict Verdict
	Rule    RuleRef
}

// DecideName judges a destination given by name; an IP literal is judged by
// address rules only, so "allow example.com" never lets a bare IP through.
func (p *Policy) DecideName(host string, port int) Decision {
	if a, ok := NormalizeAddress(host); ok {
		return p.decideAddr(a, port)
	}
	name := NormalizeName(host)
	for i := range p.Rules {
		r := &p.Rules[i]
		if r.portMatches(port) && r.nameMatches(name) {
			return Decision{r.Action, RefRule(r.Index)}
		}
	}
	return Decision{p.DefaultAction, RefDefault}
}

// DecideAddress judges an address; ok is false for text that is not one.
func (p *Policy) DecideAddress(ip string, port int) (Decision, bool) {
	a, ok := NormalizeAddress(ip)
	if !ok {
		return Decision{}, false
	}
	return p.decideAddr(a, port), true
}

func (p *Policy) decideAddr(a netip.Addr, port int) Decision {
	if r := p.FirstAddressRule(a, port); r != nil {
		return Decision{r.Action, RefRule(r.Index)}
	}
	return Decision{p.DefaultAction, RefDefault}
}

// FirstAddressRule is the first address rule matching a:port (the
// DNS-rebinding check asks it).
func (p *Policy) FirstAddressRule(a netip.Addr, port int) *Rule {
	for i := range p.Rules {
		r := &p.Rules[i]
		if r.Target.Kind == TargetAddress && r.portMatches(port) &&
			r.Target.Prefix.Addr().Is4() == a.Is4() && r.Target.Prefix.Contains(a) {
			return r
		}
	}
	return nil
}

func (r *Rule) nameMatches(name string) bool {
	switch r.Target.Kind {
	case TargetName:
		return r.Target.Name == name
	case TargetWildcard:
		return len(name) > len(r.Target.Suffix) && strings.HasSuffix(name, r.Target.Suffix)
	}
	return false
}

func (r *Rule) portMatches(port int) bool { return r.Ports == nil || r.Ports[port] }

// DecideNameAnyPort is whether a name may be reached on at least one port: what
// the DNS proxy asks (a query carries no port). Exactly "some port p has
// DecideName(name, p) allow", computed by walking the matching rules once.
func (p *Policy) DecideNameAnyPort(host string) Decision {
	if _, ok := NormalizeAddress(host); ok {
		return Decision{Deny, RefDefault}
	}
	name := NormalizeName(host)
	decided := map[int]bool{}
	var firstDeny *Rule
	for i := range p.Rules {
		r := &p.Rules[i]
		if !r.nameMatches(name) {
			continue
		}
		// A rule without ports decides every port not decided yet.
		if r.Ports == nil {
			return Decision{r.Action, RefRule(r.Index)}
		}
		if r.Action == Allow {
			for _, port := range r.PortList {
				if !decided[port] {
					return Decision{Allow, RefRule(r.Index)}
				}
			}
		}
		if r.Action == Deny && firstDeny == nil {
			firstDeny = r
		}
		for _, port := range r.PortList {
			decided[port] = true
		}
	}
	// Some port is always left undecided (rules list at most 32 ports each).
	if p.DefaultAction == Allow {
		return Decision{Allow, RefDefault}
	}
	if firstDeny != nil {
		return Decision{Deny, RefRule(firstDeny.Index)}
	}
	return Decision{p.DefaultAction, RefDefault}
}

// Destination is one connection the sidecar is about to make.
type Destination struct {
	Name    string // the name asked for, "" for an IP literal
	Address string // the address it would go to
	Port    int
}

// JudgeDestination: the name (if any) must be allowed, and the address it will
// really connect to must pass too. An address rule matching the address
// decides for it; otherwise a reserved address is refused, and any other
// follows the name's verdict (or defaultAction for an IP literal).
func (p *Policy) JudgeDestination(reserved *CIDRSet, d Destination) Decision {
	if d.Name != "" {
		if byName := p.DecideName(d.Name, d.Port); byName.Verdict == Deny {
			return byName
		}
	}
	a, ok := NormalizeAddress(d.Address)
	if ok {
		if r := p.FirstAddressRule(a, d.Port); r != nil {
			return Decision{r.Action, RefRule(r.Index)}
		}
	}
	if !ok || reserved.Has(a) {
		return Decision{Deny, RefReserved}
	}
	if d.Name != "" {
		return p.DecideName(d.Name, d.Port)
	}
	return Decision{p.DefaultAction, RefDefault}
}
