package sidecar

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"sandboxing.dev/sandbox-egress/internal/policy"
)

// Protocol is where a decision was made.
type Protocol string

const (
	ProtoDNS          Protocol = "dns"
	ProtoProxyConnect Protocol = "proxy-connect"
	ProtoProxyHTTP    Protocol = "proxy-http"
	ProtoHTTP         Protocol = "http"
	ProtoTLS          Protocol = "tls"
)

type Decision struct {
	Protocol Protocol
	Target   string // the name or address asked for ("<none>" when none)
	Port     int
	Verdict  policy.Decision
	Address  string // the address connected to or refused, if any
	Reason   string // context for refusals no rule made
}

// Decisions writes one log line and counts one sample per egress decision, so
// every refusal can be traced to the sandbox, the target and the rule.
type Decisions struct {
	log    *slog.Logger
	mu     sync.Mutex
	counts map[[2]string]uint64 // {verdict, protocol}
}

func NewDecisions(log *slog.Logger, sandbox string) *Decisions {
	return &Decisions{log: log.With("sandbox", sandbox), counts: map[[2]string]uint64{}}
}

func (d *Decisions) Record(e Decision) {
	d.mu.Lock()
	d.counts[[2]string{string(e.Verdict.Verdict), string(e.Protocol)}]++
	d.mu.Unlock()
	attrs := []any{
		"protocol", e.Protocol, "target", e.Target, "port", e.Port,
		"rule", e.Verdict.Rule, "verdict", e.Verdict.Verdict,
	}
	if e.Address != "" {
		attrs = append(attrs, "address", e.Address)
	}
	if e.Reason != "" {
		attrs = append(attrs, "reason", e.Reason)
	}
	if e.Verdict.Verdict == policy.Allow {
		d.log.Info("egress allowed", attrs...)
	} else {
		d.log.Warn("egress denied", attrs...)
	}
}

// Metrics is the Prometheus text exposition of the counters.
func (d *Decisions) Metrics() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b strings.Builder
	b.WriteString("# HELP sandbox_egress_decisions_total Egress decisions of the sidecar, by verdict and where they were made\n")
	b.WriteString("# TYPE sandbox_egress_decisions_total counter\n")
	keys := make([][2]string, 0, len(d.counts))
	for k := range d.counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	for _, k := range keys {
		fmt.Fprintf(&b, "sandbox_egress_decisions_total{verdict=%q,protocol=%q} %d\n", k[0], k[1], d.counts[k])
	}
	return b.String()
}
