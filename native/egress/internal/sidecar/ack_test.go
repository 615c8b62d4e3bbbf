package sidecar

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sandboxing.dev/sandbox-egress/internal/logx"
)

// The acknowledgement of the policy file (ack.go): after every load the
// sidecar records the sha256 of the bytes it put in force, or why it refused
// them, and never names a policy before it is in force.

func startWithAck(t *testing.T, policyText string) (f *fixture, ackFile string) {
	zone := startZone(t, map[string]string{"allowed.test": "127.0.0.1", "denied.test": "127.0.0.1"})
	web, https := startOrigin(t, false), startOrigin(t, true)
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(file, []byte(policyText), 0o644); err != nil {
		t.Fatal(err)
	}
	ackFile = filepath.Join(t.TempDir(), "applied")
	var log strings.Builder
	s, err := Start(Options{
		Sandbox: "ns/t", PolicyFile: file, PolicyAckFile: ackFile, UpstreamDNS: zone.pc.LocalAddr().String(),
		Ports:            Ports{Health: -1, Metrics: -1},
		DestinationPorts: DestinationPorts{HTTP: web.port, TLS: https.port},
		Log:              logx.New(lockedWriter{&sync.Mutex{}, &log}),
		Poll:             50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &fixture{s: s, zone: zone, web: web, https: https, policyFile: file, log: &log}, ackFile
}

func readAck(t *testing.T, path string) (AckRecord, string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r AckRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return AckRecord{}, string(b) // torn, mid-write
	}
	return r, string(b)
}

func digest(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}

// replace writes a policy as the controller does: beside the file, renamed over it.
func replace(t *testing.T, path, text string) {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestAckRecordsTheStartUpPolicyBeforeServing(t *testing.T) {
	_, ack := startWithAck(t, basePolicy)
	r, text := readAck(t, ack)
	if r != (AckRecord{SHA256: digest(basePolicy), Applied: true}) {
		t.Fatalf("record %q", text)
	}
	if !strings.HasSuffix(text, "}\n") || strings.Count(text, "\n") != 1 {
		t.Errorf("one JSON line expected: %q", text)
	}
	if st, _ := os.Stat(ack); st.Mode().Perm() != 0o600 {
		t.Errorf("created with mode %v, want 0600", st.Mode().Perm())
	}
}

func TestAckFollowsEveryLoadAndNamesOnlyAPolicyInForce(t *testing.T) {
	f, ack := startWithAck(t, basePolicy)
	status := func(host string) string {
		return fmt.Sprint(statuses(t, raw(t, f.s.Bound.HTTP, "GET / HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n")))
	}
	if got := status("denied.test"); got != "[403]" {
		t.Fatalf("denied.test before: %s", got)
	}
	wider := basePolicy + "  - {action: allow, target: denied.test}\n"
	replace(t, f.policyFile, wider)
	// The moment the record names the new policy, the new policy decides.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if r, _ := readAck(t, ack); r.SHA256 == digest(wider) {
			if !r.Applied || r.Error != "" {
				t.Fatalf("record %+v", r)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never acknowledged the wider policy")
		}
		time.Sleep(time.Millisecond)
	}
	if got := status("denied.test"); got != "[200]" {
		t.Fatalf("acknowledged but not in force: denied.test %s", got)
	}

	// Refused: the record says so (same digest as the bytes read), and egress is closed.
	bad := "rules: [{action: allow, target: 'not a name'}]\n"
	replace(t, f.policyFile, bad)
	eventuallyAck(t, ack, func(r AckRecord) bool { return r.SHA256 == digest(bad) })
	r, _ := readAck(t, ack)
	if r.Applied || !strings.Contains(r.Error, "rules[0].target") {
		t.Fatalf("refusal recorded as %+v", r)
	}
	if got := status("allowed.test"); got != "[403]" {
		t.Fatalf("a refused policy must close egress: %s", got)
	}

	// Unreadable: no digest, the reason.
	if err := os.Remove(f.policyFile); err != nil {
		t.Fatal(err)
	}
	eventuallyAck(t, ack, func(r AckRecord) bool { return r.SHA256 == "" && !r.Applied })
	if r, _ := readAck(t, ack); !strings.Contains(r.Error, "cannot read policy") {
		t.Fatalf("unreadable recorded as %+v", r)
	}

	// A shorter record after a longer one: cut to length, one line, parses.
	replace(t, f.policyFile, basePolicy)
	eventuallyAck(t, ack, func(r AckRecord) bool { return r.SHA256 == digest(basePolicy) && r.Applied })
	if _, text := readAck(t, ack); strings.Count(text, "\n") != 1 || strings.Contains(text, "error") {
		t.Fatalf("leftover of a longer record: %q", text)
	}
}

func eventuallyAck(t *testing.T, path string, ok func(AckRecord) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if r, _ := readAck(t, path); ok(r) {
			return
		}
		if time.Now().After(deadline) {
			_, text := readAck(t, path)
			t.Fatalf("never: last record %q", text)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAckAnUnchangedFileIsNotRewritten(t *testing.T) {
	f, ack := startWithAck(t, basePolicy)
	before, _ := os.Stat(ack)
	// The same bytes renamed over the file: an inotify event, a reload, no new record.
	replace(t, f.policyFile, basePolicy)
	time.Sleep(300 * time.Millisecond)
	after, _ := os.Stat(ack)
	if !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("rewritten for unchanged bytes: %v -> %v", before.ModTime(), after.ModTime())
	}
}

func TestAckThatCannotBeOpenedStopsTheStart(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(file, []byte(basePolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Start(Options{
		Sandbox: "ns/t", PolicyFile: file, PolicyAckFile: filepath.Join(dir, "missing", "applied"),
		UpstreamDNS: "127.0.0.1:53", Ports: Ports{Health: -1, Metrics: -1},
		Log: logx.New(&strings.Builder{}),
	})
	if err == nil || !strings.Contains(err.Error(), "policy acknowledgement file") {
		t.Fatalf("want a start failure naming the acknowledgement file, got %v", err)
	}
}

// The same vector as src/egress/policy-ack.test.ts: both sides name a file alike.
func TestPolicyDigestIsTheControllers(t *testing.T) {
	const file = "{\"defaultAction\":\"deny\",\"rules\":[]}\n"
	if got := PolicyDigest([]byte(file)); got != "74d84807bfcb476578d8653f61df7c7106c47913e18b969ed82071d3e0b5f47d" {
		t.Fatalf("digest %s", got)
	}
}

func TestNilAckWritesNothing(t *testing.T) {
	var a *PolicyAck
	if err := a.Applied([]byte("x")); err != nil {
		t.Fatal(err)
	}
	a.Close()
}
