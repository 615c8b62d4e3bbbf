// Package policy is the egress policy: parse and validate a `network.egress`
// object (the same acceptance as the CRD and the TypeScript policy), then judge
// names and addresses against it. Pure; shared by the sidecar and the lockdown.
// test/vectors/egress-policy.json pins its behaviour to the TypeScript one.
package policy

import (
	"encoding/json"
	"fmt"
	"math"

	"go.yaml.in/yaml/v3"
)

type Verdict string

const (
	Allow Verdict = "allow"
	Deny  Verdict = "deny"
)

// Bounds of the Sandbox API's schema (src/api/sandbox-spec.ts).
const (
	MaxRules     = 512
	MaxRulePorts = 32
)

type Rule struct {
	Index  int
	Action Verdict
	Target Target
	// Ports is nil for every port (no ports, or an empty list).
	Ports map[int]bool
	// PortList keeps the order the policy gave (the lockdown renders it).
	PortList []int
}

type Policy struct {
	DefaultAction Verdict
	Rules         []Rule
}

// DenyAll is what the sidecar enforces without a valid policy.
var DenyAll = &Policy{DefaultAction: Deny}

// Error names the offending field the way the apiserver does (rules[3].target).
type Error struct {
	Field     string
	Reason    string
	RuleIndex int // -1 when not about one rule
}

func (e *Error) Error() string { return e.Field + ": " + e.Reason }

func fail(field, reason string, rule int) *Error {
	return &Error{Field: field, Reason: reason, RuleIndex: rule}
}

// FromText reads a policy file: JSON (what both backends write) or YAML (what
// people write by hand). Empty or null means the default (deny everything).
func FromText(text []byte) (*Policy, error) {
	var raw any
	if err := json.Unmarshal(text, &raw); err != nil {
		raw = nil
		if err := yaml.Unmarshal(text, &raw); err != nil {
			return nil, fmt.Errorf("policy is neither JSON nor YAML: %w", err)
		}
	}
	if raw == nil {
		raw = map[string]any{}
	}
	return Parse(raw)
}

// Parse validates an untrusted decoded document and compiles it.
func Parse(raw any) (*Policy, error) {
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, fail("(policy)", "must be an object", -1)
	}
	p := &Policy{DefaultAction: Deny}
	if v, present := obj["defaultAction"]; present {
		a, ok := action(v)
		if !ok {
			return nil, fail("defaultAction", `must be "allow" or "deny"`, -1)
		}
		p.DefaultAction = a
	}
	rulesRaw, present := obj["rules"]
	if !present {
		return p, nil
	}
	list, ok := rulesRaw.([]any)
	if !ok {
		return nil, fail("rules", "must be a list", -1)
	}
	if len(list) > MaxRules {
		return nil, fail("rules", fmt.Sprintf("must have at most %d rules", MaxRules), -1)
	}
	// Shape first for every rule (as the schema does), then targets and ports.
	shaped := make([]shapedRule, len(list))
	for i, r := range list {
		s, err := checkRule(r, i)
		if err != nil {
			return nil, err
		}
		shaped[i] = s
	}
	for i, s := range shaped {
		rule, err := compileRule(s, i)
		if err != nil {
			return nil, err
		}
		p.Rules = append(p.Rules, rule)
	}
	return p, nil
}

type shapedRule struct {
	action Verdict
	target string
	ports  []int
}

func checkRule(raw any, i int) (shapedRule, error) {
	f := func(field, reason string) (shapedRule, error) {
		return shapedRule{}, fail(fmt.Sprintf("rules[%d]%s", i, field), reason, i)
	}
	obj, ok := raw.(map[string]any)
	if !ok {
		return f("", "must be an object")
	}
	a, ok := action(obj["action"])
	if !ok {
		return f(".action", `must be "allow" or "deny"`)
	}
	target, ok := obj["target"].(string)
	if !ok {
		return f(".target", "must be a string")
	}
	if n := jsLength(target); n < 1 || n > MaxTargetLength {
		return f(".target", fmt.Sprintf("must be 1 to %d characters", MaxTargetLength))
	}
	out := shapedRule{action: a, target: target}
	portsRaw, present := obj["ports"]
	if !present {
		return out, nil
	}
	list, ok := portsRaw.([]any)
	if !ok {
		return f(".ports", "must be a list")
	}
	if len(list) > MaxRulePorts {
		return f(".ports", fmt.Sprintf("must have at most %d ports", MaxRulePorts))
	}
	for j, v := range list {
		port, ok := integer(v)
		if !ok || port < 1 || port > 65535 {
			return f(fmt.Sprintf(".ports[%d]", j), "must be an integer from 1 to 65535")
		}
		out.ports = append(out.ports, port)
	}
	return out, nil
}

func compileRule(s shapedRule, i int) (Rule, error) {
	t, ok := ParseTarget(s.target)
	if !ok {
		b, _ := json.Marshal(s.target)
		return Rule{}, fail(fmt.Sprintf("rules[%d].target", i), string(b)+" "+TargetReason, i)
	}
	r := Rule{Index: i, Action: s.action, Target: t}
	for j, port := range s.ports {
		if r.Ports[port] {
			return Rule{}, fail(fmt.Sprintf("rules[%d].ports[%d]", i, j), fmt.Sprintf("duplicate port %d", port), i)
		}
		if r.Ports == nil {
			r.Ports = map[int]bool{}
		}
		r.Ports[port] = true
		r.PortList = append(r.PortList, port)
	}
	return r, nil
}

func action(v any) (Verdict, bool) {
	s, ok := v.(string)
	if ok && (s == string(Allow) || s == string(Deny)) {
		return Verdict(s), true
	}
	return "", false
}

// integer accepts what JavaScript's Number.isSafeInteger accepts: a number
// (JSON gives float64, YAML int or float64) with no fractional part.
func integer(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		return int(n), true
	case uint64:
		if n > 1<<53 {
			return 0, false
		}
		return int(n), true
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > 1<<53-1 {
			return 0, false
		}
		return int(n), true
	}
	return 0, false
}
