package lockdown

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"

	"sandboxing.dev/sandbox-egress/internal/policy"
)

// test/vectors/egress-lockdown.json: the TypeScript lockdown's rules for a few
// policies; Build must produce exactly the same lines.
func TestLockdownVectors(t *testing.T) {
	data, err := os.ReadFile("../../../../test/vectors/egress-lockdown.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []struct {
			Name     string          `json:"name"`
			Policy   json.RawMessage `json:"policy"`
			Reserved []string        `json:"reserved"`
			IPv4     []Table         `json:"ipv4"`
			IPv6     []Table         `json:"ipv6"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) < 5 {
		t.Fatalf("only %d cases", len(file.Cases))
	}
	for _, c := range file.Cases {
		t.Run(c.Name, func(t *testing.T) {
			p, err := policy.FromText(c.Policy)
			if err != nil {
				t.Fatal(err)
			}
			reserved, err := policy.ReservedRanges(c.Reserved)
			if err != nil {
				t.Fatal(err)
			}
			got := Build(Config{Policy: p, SidecarUID: 1337, Ports: ListenPorts{15053, 15080, 15443}, Reserved: reserved})
			if !reflect.DeepEqual(got.IPv4, c.IPv4) || !reflect.DeepEqual(got.IPv6, c.IPv6) {
				g, _ := json.MarshalIndent(got, "", " ")
				t.Fatalf("got\n%s", g)
			}
		})
	}
}

func TestVerifyCatchesADifference(t *testing.T) {
	p, _ := policy.FromText([]byte(`{"defaultAction":"deny"}`))
	reserved, _ := policy.ReservedRanges(nil)
	rs := Build(Config{Policy: p, SidecarUID: 1337, Ports: ListenPorts{15053, 15080, 15443}, Reserved: reserved})
	script := RenderRestore(rs.IPv4, Saved{})
	// What iptables-save would print after a faithful apply.
	saved := "*filter\n:OUTPUT DROP [0:0]\n:SANDBOX-EGRESS - [0:0]\n" + Jump + "\n"
	for _, r := range rs.IPv4[0].Chains[0].Rules {
		saved += r + "\n"
	}
	saved += "COMMIT\n*nat\n:OUTPUT ACCEPT [0:0]\n:SANDBOX-EGRESS - [0:0]\n:SANDBOX-EGRESS-DIRECT - [0:0]\n" + Jump + "\n"
	for _, r := range rs.IPv4[1].Chains[0].Rules {
		saved += r + "\n"
	}
	saved += "COMMIT\n"
	if problems := Verify(rs.IPv4, ParseSave(saved)); len(problems) != 0 {
		t.Fatalf("faithful apply reported: %v\nscript:\n%s", problems, script)
	}
	tampered := ParseSave(saved)
	tampered["filter"].Rules = tampered["filter"].Rules[:len(tampered["filter"].Rules)-1]
	if problems := Verify(rs.IPv4, tampered); len(problems) != 1 {
		t.Fatalf("a missing last rule gave %v", problems)
	}
	tampered["nat"].Rules = append(tampered["nat"].Rules, Jump)
	if problems := Verify(rs.IPv4, tampered); len(problems) != 2 {
		t.Fatalf("a second jump gave %v", problems)
	}
}
