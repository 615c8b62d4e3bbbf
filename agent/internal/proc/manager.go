package proc

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"sort"
	"sync"

	"sandboxing.dev/sandbox-agent/internal/apierr"
)

// Limits of the manager: a sandbox's pids limit bounds processes anyway;
// these bound the agent's own bookkeeping.
const (
	MaxRunning      = 1024
	MaxKeptFinished = 256
)

// Manager tracks every process the agent started, foreground and background.
type Manager struct {
	mu    sync.Mutex
	procs map[string]*Process
	order []string // start order, for listing and evicting finished ones
}

func NewManager() *Manager { return &Manager{procs: map[string]*Process{}} }

// Start runs spec. out nil starts a background process (output kept in ring
// buffers, kept after exit until removed); otherwise a foreground one whose
// output goes to out, forgotten once it ends.
func (m *Manager) Start(spec Spec, out *Outputs) (*Process, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	running := 0
	for _, p := range m.procs {
		if p.Exit() == nil {
			running++
		}
	}
	m.mu.Unlock()
	if running >= MaxRunning {
		return nil, apierr.New(http.StatusServiceUnavailable, apierr.TooManyProcs, "too many running processes")
	}
	p, err := start(newID(), spec, out)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.procs[p.ID] = p
	m.order = append(m.order, p.ID)
	m.evictLocked()
	m.mu.Unlock()
	if out != nil {
		go func() {
			<-p.Done()
			m.Remove(p.ID)
		}()
	}
	return p, nil
}

// evictLocked forgets the oldest finished background processes beyond MaxKeptFinished.
func (m *Manager) evictLocked() {
	finished := 0
	for _, id := range m.order {
		if m.procs[id].Exit() != nil {
			finished++
		}
	}
	for i := 0; finished > MaxKeptFinished && i < len(m.order); {
		id := m.order[i]
		if m.procs[id].Exit() != nil {
			delete(m.procs, id)
			m.order = append(m.order[:i], m.order[i+1:]...)
			finished--
			continue
		}
		i++
	}
}

func (m *Manager) Get(id string) (*Process, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.procs[id]
	if !ok {
		return nil, apierr.New(http.StatusNotFound, apierr.NotFound, "no process "+id)
	}
	return p, nil
}

func (m *Manager) Remove(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.procs, id)
	for i, x := range m.order {
		if x == id {
			m.order = append(m.order[:i], m.order[i+1:]...)
			break
		}
	}
}

func (m *Manager) List() []Info {
	m.mu.Lock()
	ps := make([]*Process, 0, len(m.procs))
	for _, p := range m.procs {
		ps = append(ps, p)
	}
	m.mu.Unlock()
	out := make([]Info, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StartedAt.Before(out[j].StartedAt) })
	return out
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
