package lockdown

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// test/vectors/egress-lockdown.json: the TypeScript lockdown's rules for a few
// configurations; Build must produce exactly the same lines.
func TestLockdownVectors(t *testing.T) {
	data, err := os.ReadFile("../../../../test/vectors/egress-lockdown.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []struct {
			Name       string      `json:"name"`
			SidecarUID int         `json:"sidecarUid"`
			Ports      ListenPorts `json:"ports"`
			IPv4       []Table     `json:"ipv4"`
			IPv6       []Table     `json:"ipv6"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) < 2 {
		t.Fatalf("only %d cases", len(file.Cases))
	}
	for _, c := range file.Cases {
		t.Run(c.Name, func(t *testing.T) {
			got := Build(Config{SidecarUID: c.SidecarUID, Ports: c.Ports})
			if !reflect.DeepEqual(got.IPv4, c.IPv4) || !reflect.DeepEqual(got.IPv6, c.IPv6) {
				g, _ := json.MarshalIndent(got, "", " ")
				t.Fatalf("got\n%s", g)
			}
		})
	}
}

// The firewall holds no policy: nothing outside loopback is named, and no
// rule accepts by conntrack state alone or before the owner match.
func TestRulesetHoldsNoPolicy(t *testing.T) {
	rs := Build(Config{SidecarUID: 1337, Ports: ListenPorts{15053, 15080, 15443}})
	for _, table := range append(append([]Table{}, rs.IPv4...), rs.IPv6...) {
		for _, chain := range table.Chains {
			for _, r := range chain.Rules {
				if strings.Contains(r, " -d ") && !strings.Contains(r, " -d 127.0.0.1/32 ") {
					t.Errorf("rule names a destination: %s", r)
				}
				if strings.HasSuffix(r, " -j ACCEPT") && strings.Contains(r, "ESTABLISHED") &&
					!strings.Contains(r, "--ctdir REPLY") && !strings.Contains(r, "! --socket-exists") {
					t.Errorf("accepts by state alone: %s", r)
				}
			}
		}
	}
	filter := rs.IPv4[0].Chains[0].Rules
	if filter[len(filter)-1] != "-A "+Chain+" -j "+prohibitedV4 {
		t.Errorf("the filter does not end in a refusal: %v", filter)
	}
}

func TestVerifyCatchesADifference(t *testing.T) {
	rs := Build(Config{SidecarUID: 1337, Ports: ListenPorts{15053, 15080, 15443}})
	script := RenderRestore(rs.IPv4, Saved{})
	// What iptables-save would print after a faithful apply.
	saved := "*filter\n:OUTPUT DROP [0:0]\n:SANDBOX-EGRESS - [0:0]\n" + Jump + "\n"
	for _, r := range rs.IPv4[0].Chains[0].Rules {
		saved += r + "\n"
	}
	saved += "COMMIT\n*nat\n:OUTPUT ACCEPT [0:0]\n:SANDBOX-EGRESS - [0:0]\n" + Jump + "\n"
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
