package activity

import (
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestIdleSinceStartThenSinceLastCall(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	tr := NewWithClock(c.now)
	c.add(5 * time.Second)
	if s := tr.Snapshot(); s.IdleMs != 5000 || s.InFlight != 0 || s.Calls != 0 {
		t.Fatalf("fresh agent: %+v, want idle 5000 ms, nothing in flight, no calls", s)
	}
	end := tr.Begin()
	c.add(30 * time.Second)
	if s := tr.Snapshot(); s.IdleMs != 0 || s.InFlight != 1 {
		t.Fatalf("during a 30 s call: %+v, want idle 0 and 1 in flight", s)
	}
	end()
	end() // a second end is ignored
	c.add(2 * time.Second)
	if s := tr.Snapshot(); s.IdleMs != 2000 || s.InFlight != 0 || s.Calls != 1 {
		t.Fatalf("2 s after the call ended: %+v, want idle 2000, 0 in flight, 1 call", s)
	}
}

func TestOverlappingCallsKeepItBusyUntilTheLastEnds(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	tr := NewWithClock(c.now)
	a := tr.Begin()
	b := tr.Begin()
	c.add(time.Second)
	a()
	c.add(time.Second)
	if s := tr.Snapshot(); s.IdleMs != 0 || s.InFlight != 1 {
		t.Fatalf("one of two calls still running: %+v", s)
	}
	b()
	c.add(3 * time.Second)
	if s := tr.Snapshot(); s.IdleMs != 3000 || s.Calls != 2 {
		t.Fatalf("after both: %+v", s)
	}
}

func TestTouchResetsIdle(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	tr := NewWithClock(c.now)
	c.add(time.Minute)
	tr.Touch()
	c.add(time.Second)
	if s := tr.Snapshot(); s.IdleMs != 1000 || s.InFlight != 0 || s.Calls != 1 {
		t.Fatalf("after a touch: %+v", s)
	}
}

func TestClockGoingBackwardsIsNotNegativeIdle(t *testing.T) {
	c := &clock{t: time.Unix(100, 0)}
	tr := NewWithClock(c.now)
	c.add(-time.Second)
	if s := tr.Snapshot(); s.IdleMs != 0 {
		t.Fatalf("idle %d ms, want 0", s.IdleMs)
	}
}
