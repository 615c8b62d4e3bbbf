// Package idle gives memory back to the kernel once the agent has nothing to
// do. The Go runtime keeps freed heap pages mapped for a while (the scavenger
// returns them slowly), so after a burst of work (100 concurrent execs, a
// large file) an idle agent would stay at its high-water RSS. A sandbox runs
// the agent beside the user's workload, inside the user's memory limit, for
// the sandbox's whole life: idle should cost what a fresh agent costs.
package idle

import (
	"net/http"
	"runtime/debug"
	"sync"
	"time"
)

// Handler wraps h: when its last in-flight request ends and none starts for
// quiet, the garbage collector runs and freed memory is returned to the OS.
func Handler(h http.Handler, quiet time.Duration) http.Handler {
	return HandlerFunc(h, quiet, debug.FreeOSMemory)
}

// HandlerFunc is Handler with the release action given (for tests).
func HandlerFunc(h http.Handler, quiet time.Duration, release func()) http.Handler {
	t := &tracker{quiet: quiet, release: release}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.begin()
		defer t.end()
		h.ServeHTTP(w, r)
	})
}

type tracker struct {
	mu       sync.Mutex
	inFlight int
	timer    *time.Timer
	quiet    time.Duration
	release  func()
}

func (t *tracker) begin() {
	t.mu.Lock()
	t.inFlight++
	if t.timer != nil {
		t.timer.Stop()
	}
	t.mu.Unlock()
}

func (t *tracker) end() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.inFlight--
	if t.inFlight > 0 {
		return
	}
	if t.timer == nil {
		t.timer = time.AfterFunc(t.quiet, t.fire)
	} else {
		t.timer.Reset(t.quiet)
	}
}

func (t *tracker) fire() {
	t.mu.Lock()
	busy := t.inFlight > 0
	t.mu.Unlock()
	if !busy {
		t.release()
	}
}
