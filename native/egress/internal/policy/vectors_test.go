package policy

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The shared vectors: generated from the TypeScript policy by
// test/vectors/generate.ts; every answer there must be this package's too.
const vectorsFile = "../../../../test/vectors/egress-policy.json"

type vectorCheck struct {
	Op      string `json:"op"`
	Host    string `json:"host"`
	IP      string `json:"ip"`
	Name    string `json:"name"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	Want    struct {
		Verdict string          `json:"verdict"`
		Route   string          `json:"route"`
		Rule    json.RawMessage `json:"rule"`
	} `json:"want"`
}

type vectorCase struct {
	Name     string          `json:"name"`
	Policy   json.RawMessage `json:"policy"`
	Reserved []string        `json:"reserved"`
	Error    *struct {
		Field string `json:"field"`
	} `json:"error"`
	Checks []vectorCheck `json:"checks"`
}

func TestVectors(t *testing.T) {
	data, err := os.ReadFile(filepath.FromSlash(vectorsFile))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []vectorCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) < 40 {
		t.Fatalf("only %d cases in %s", len(file.Cases), vectorsFile)
	}
	checks := 0
	for _, c := range file.Cases {
		t.Run(c.Name, func(t *testing.T) {
			p, err := FromText(c.Policy)
			if c.Error != nil {
				var pe *Error
				if !errors.As(err, &pe) {
					t.Fatalf("want a policy error on %s, got %v", c.Error.Field, err)
				}
				if pe.Field != c.Error.Field {
					t.Fatalf("error on %q (%s), want %q", pe.Field, pe.Reason, c.Error.Field)
				}
				return
			}
			if err != nil {
				t.Fatalf("policy refused: %v", err)
			}
			reserved, err := ReservedRanges(c.Reserved)
			if err != nil {
				t.Fatal(err)
			}
			for _, ch := range c.Checks {
				checks++
				var got Decision
				if ch.Op == "redirected" {
					r := p.JudgeRedirected(reserved, ch.Address, ch.Port)
					rule := []byte("null")
					if r.Rule != nil {
						rule, _ = json.Marshal(*r.Rule)
					}
					if string(r.Route) != ch.Want.Route || string(rule) != string(ch.Want.Rule) {
						t.Errorf("redirected %s:%d: got %s by %s, want %s by %s", ch.Address, ch.Port, r.Route, rule, ch.Want.Route, ch.Want.Rule)
					}
					continue
				}
				switch ch.Op {
				case "name":
					got = p.DecideName(ch.Host, ch.Port)
				case "address":
					var ok bool
					if got, ok = p.DecideAddress(ch.IP, ch.Port); !ok {
						t.Errorf("%+v: not an address", ch)
						continue
					}
				case "anyPort":
					got = p.DecideNameAnyPort(ch.Host)
				case "destination":
					got = p.JudgeDestination(reserved, Destination{Name: ch.Name, Address: ch.Address, Port: ch.Port})
				default:
					t.Fatalf("unknown op %q", ch.Op)
				}
				rule, _ := json.Marshal(got.Rule)
				if string(got.Verdict) != ch.Want.Verdict || string(rule) != string(ch.Want.Rule) {
					t.Errorf("%s %q%q%q%q port %d: got %s by %s, want %s by %s", ch.Op, ch.Host, ch.IP, ch.Name, ch.Address, ch.Port,
						got.Verdict, rule, ch.Want.Verdict, ch.Want.Rule)
				}
			}
		})
	}
	t.Logf("%d cases, %d checks", len(file.Cases), checks)
}
