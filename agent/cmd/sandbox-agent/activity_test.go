package main

import (
	"net/http"
	"testing"
	"time"

	"sandboxing.dev/sandbox-agent/internal/agenttest"
)

type activitySnapshot struct {
	IdleMs   int64  `json:"idleMs"`
	InFlight int    `json:"inFlight"`
	Calls    uint64 `json:"calls"`
}

func readActivity(t *testing.T, c *agenttest.Client) activitySnapshot {
	t.Helper()
	var a activitySnapshot
	if st := c.JSON(t, "GET", "/v1/activity", nil, nil, &a); st != http.StatusOK {
		t.Fatalf("GET /v1/activity: %d", st)
	}
	return a
}

// The controller's idle check (docs/idle.md) against the real binary: calls
// move the clock, reading it does not, the gateway's report does, and
// neither read nor report works without the credential.
func TestActivityClock(t *testing.T) {
	for _, method := range []string{"GET", "POST"} {
		var body map[string]any
		st := agenttest.New(client.Base, "").JSON(t, method, "/v1/activity", nil, nil, &body)
		if st != http.StatusUnauthorized {
			t.Fatalf("%s /v1/activity without the credential: %d, want 401", method, st)
		}
		st = agenttest.New(client.Base, otherToken).JSON(t, method, "/v1/activity", nil, nil, &body)
		if st != http.StatusUnauthorized {
			t.Fatalf("%s /v1/activity with another sandbox's credential: %d, want 401", method, st)
		}
	}
	before := readActivity(t, client)

	// A refused call is not use: unauthenticated traffic cannot keep a sandbox awake.
	time.Sleep(300 * time.Millisecond)
	agenttest.New(client.Base, "").JSON(t, "GET", "/v1/version", nil, nil, nil)
	if a := readActivity(t, client); a.IdleMs < 300 || a.Calls != before.Calls {
		t.Fatalf("after an unauthenticated call: %+v (before %+v), want idle ≥ 300 ms and no call counted", a, before)
	}

	// Reading the clock is not use: the idle time keeps growing.
	first := readActivity(t, client)
	time.Sleep(200 * time.Millisecond)
	second := readActivity(t, client)
	if second.IdleMs < first.IdleMs+150 || second.Calls != first.Calls {
		t.Fatalf("reading the clock moved it: %+v then %+v", first, second)
	}

	// A call is use, for as long as it runs.
	done := make(chan struct{})
	go func() {
		defer close(done)
		runArgv(t, "sleep", "0.5")
	}()
	time.Sleep(200 * time.Millisecond)
	if a := readActivity(t, client); a.InFlight != 1 || a.IdleMs != 0 || a.Calls != second.Calls+1 {
		t.Fatalf("during a 0.5 s exec: %+v, want 1 in flight, idle 0", a)
	}
	<-done
	time.Sleep(100 * time.Millisecond)
	if a := readActivity(t, client); a.InFlight != 0 || a.IdleMs < 50 || a.IdleMs > 1000 {
		t.Fatalf("after the exec: %+v, want idle since its end (≈100 ms)", a)
	}

	// The gateway's report of port traffic is use.
	time.Sleep(300 * time.Millisecond)
	if st := client.JSON(t, "POST", "/v1/activity", nil, nil, nil); st != http.StatusNoContent {
		t.Fatalf("POST /v1/activity: %d, want 204", st)
	}
	if a := readActivity(t, client); a.IdleMs > 250 {
		t.Fatalf("after a report: idle %d ms, want ≈0", a.IdleMs)
	}
}
