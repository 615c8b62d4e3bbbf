package lockdown

import (
	"fmt"
	"strings"
)

// Jump is the one rule the lockdown adds to OUTPUT in each table.
const Jump = "-A OUTPUT -j " + Chain

// RenderRestore is one iptables-restore input, applied with --noflush. Each
// table's block commits atomically: declaring a chain creates or flushes it,
// old jumps into it are deleted and one is inserted at the top of OUTPUT, all
// in the same commit, so there is no instant with a half-written lockdown.
// existing is what iptables-save printed before (jumps left by an earlier run).
func RenderRestore(tables []Table, existing Saved) string {
	var b strings.Builder
	for _, t := range tables {
		fmt.Fprintf(&b, "*%s\n", t.Name)
		if pol, ok := t.Policies["OUTPUT"]; ok {
			fmt.Fprintf(&b, ":OUTPUT %s [0:0]\n", pol)
		}
		for _, c := range t.Chains {
			fmt.Fprintf(&b, ":%s - [0:0]\n", c.Name)
		}
		stale := 0
		if saved, ok := existing[t.Name]; ok {
			for _, r := range saved.Rules {
				if r == Jump {
					stale++
				}
			}
		}
		for range stale {
			fmt.Fprintf(&b, "-D OUTPUT -j %s\n", Chain)
		}
		fmt.Fprintf(&b, "-I OUTPUT 1 -j %s\n", Chain)
		for _, c := range t.Chains {
			for _, r := range c.Rules {
				b.WriteString(r + "\n")
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

// SavedTable is one table of iptables-save output.
type SavedTable struct {
	Chains map[string]string // chain -> policy ("-" for user chains)
	Rules  []string          // every "-A ..." line, in order
}

type Saved map[string]*SavedTable

func ParseSave(text string) Saved {
	tables := Saved{}
	var cur *SavedTable
	for _, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			cur = &SavedTable{Chains: map[string]string{}}
			tables[line[1:]] = cur
		case line == "COMMIT":
			cur = nil
		case cur != nil && strings.HasPrefix(line, ":"):
			fields := strings.Fields(line[1:])
			pol := "-"
			if len(fields) > 1 {
				pol = fields[1]
			}
			if len(fields) > 0 {
				cur.Chains[fields[0]] = pol
			}
		case cur != nil && strings.HasPrefix(line, "-A "):
			cur.Rules = append(cur.Rules, line)
		}
	}
	return tables
}

func chainRules(t *SavedTable, chain string) []string {
	var out []string
	if t == nil {
		return out
	}
	for _, r := range t.Rules {
		if strings.HasPrefix(r, "-A "+chain+" ") {
			out = append(out, r)
		}
	}
	return out
}

// Verify compares what the kernel holds with the intent; any difference is a
// problem (a lockdown that is not exactly what was intended is not trusted).
func Verify(intended []Table, saved Saved) []string {
	var problems []string
	for _, t := range intended {
		table, ok := saved[t.Name]
		if !ok {
			problems = append(problems, fmt.Sprintf("table %s is missing", t.Name))
			continue
		}
		for chain, want := range t.Policies {
			if got := table.Chains[chain]; got != want {
				problems = append(problems, fmt.Sprintf("%s %s policy is %s, want %s", t.Name, chain, got, want))
			}
		}
		output := chainRules(table, "OUTPUT")
		if len(output) == 0 || output[0] != Jump {
			problems = append(problems, fmt.Sprintf("%s OUTPUT does not start with %q", t.Name, Jump))
		}
		jumps := 0
		for _, r := range output {
			if r == Jump {
				jumps++
			}
		}
		if jumps != 1 {
			problems = append(problems, fmt.Sprintf("%s OUTPUT jumps to the lockdown %d times, want 1", t.Name, jumps))
		}
		for _, c := range t.Chains {
			if _, ok := table.Chains[c.Name]; !ok {
				problems = append(problems, fmt.Sprintf("%s chain %s is missing", t.Name, c.Name))
				continue
			}
			got := chainRules(table, c.Name)
			for i := 0; i < max(len(got), len(c.Rules)); i++ {
				g, w := "null", "null"
				if i < len(got) {
					g = fmt.Sprintf("%q", got[i])
				}
				if i < len(c.Rules) {
					w = fmt.Sprintf("%q", c.Rules[i])
				}
				if g != w {
					problems = append(problems, fmt.Sprintf("%s %s rule %d: got %s, want %s", t.Name, c.Name, i+1, g, w))
				}
			}
		}
	}
	return problems
}
