// Package activity keeps when the sandbox was last used, so the controller
// can suspend an idle sandbox (issue 20, docs/idle.md) without anything being
// written per request: every authenticated data-plane call (direct or through
// the gateway) and every port-traffic report from the gateway moves one
// in-memory clock; the controller reads it once per idle period
// (GET /v1/activity), and that read does not count as use.
//
// Idle time is measured on the agent's monotonic clock and reported as a
// duration, so the controller's and the sandbox host's wall clocks never have
// to agree.
package activity

import (
	"sync"
	"time"
)

// Tracker is safe for concurrent use. A call in flight counts as activity
// for as long as it lasts (a 20-minute exec is use, not idleness).
type Tracker struct {
	mu       sync.Mutex
	inFlight int
	last     time.Time // monotonic reading of the last begin or end
	calls    uint64
	now      func() time.Time
}

// New starts idle from now: an agent nobody has called yet has been idle since it started.
func New() *Tracker { return NewWithClock(time.Now) }

// NewWithClock is New with the clock given (for tests).
func NewWithClock(now func() time.Time) *Tracker {
	return &Tracker{last: now(), now: now}
}

// Begin marks a call starting; the returned func marks it ending (call it once).
func (t *Tracker) Begin() (end func()) {
	t.mu.Lock()
	t.inFlight++
	t.calls++
	t.last = t.now()
	t.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			t.inFlight--
			t.last = t.now()
			t.mu.Unlock()
		})
	}
}

// Touch records use that is not a call to the agent (port traffic the gateway proxied).
func (t *Tracker) Touch() { t.Begin()() }

// Snapshot is what GET /v1/activity answers.
type Snapshot struct {
	// IdleMs is how long nothing has been in flight (0 while a call is).
	IdleMs int64 `json:"idleMs"`
	// InFlight is the number of calls running now.
	InFlight int `json:"inFlight"`
	// Calls counts calls and reports since the agent started (a restart resets it).
	Calls uint64 `json:"calls"`
}

func (t *Tracker) Snapshot() Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Snapshot{InFlight: t.inFlight, Calls: t.calls}
	if t.inFlight == 0 {
		s.IdleMs = t.now().Sub(t.last).Milliseconds()
		if s.IdleMs < 0 {
			s.IdleMs = 0
		}
	}
	return s
}
