package sidecar

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"sandboxing.dev/sandbox-egress/internal/policy"
)

// PolicyFile is the policy as a mounted file that may change while the
// sandbox runs. The pod backend mounts it from a ConfigMap, which the kubelet
// updates by swapping a symlink (..data) in the directory: the file's inode
// changes and a watch on the file itself would go silent. So the directory is
// watched, and a periodic stat catches whatever inotify misses. A change that
// cannot be read or does not compile makes the sidecar deny everything (fail
// closed) and report not ready until a valid policy arrives.
type PolicyFile struct {
	path     string
	log      *slog.Logger
	current  atomic.Pointer[policy.Policy]
	problem  atomic.Pointer[string]
	mu       sync.Mutex // serialises reloads
	lastText []byte
	lastStat string
	stop     chan struct{}
	watcher  *fsnotify.Watcher
	// ack, when set, records each load's outcome for the controller (ack.go).
	ack *PolicyAck
	// channelOwned: the policy channel has delivered; the file is no longer followed (channel.go).
	channelOwned atomic.Bool
}

// WatchPolicyFile loads the file (an error if the first load fails) and keeps
// following it. ack (may be nil) records every load's outcome; a first
// acknowledgement that cannot be written is an error too, since the
// controller would then wait for it forever.
func WatchPolicyFile(path string, log *slog.Logger, poll time.Duration, ack *PolicyAck) (*PolicyFile, error) {
	f := &PolicyFile{path: path, log: log.With("policyFile", path), stop: make(chan struct{}), ack: ack}
	text, err := os.ReadFile(path)
	if err != nil {
		_ = ack.Refused(nil, fmt.Sprintf("cannot read policy: %v", err))
		return nil, err
	}
	p, err := policy.FromText(text)
	if err != nil {
		_ = ack.Refused(text, fmt.Sprintf("invalid policy: %v", err))
		return nil, err
	}
	f.current.Store(p)
	if err := ack.Applied(text); err != nil {
		return nil, err
	}
	f.lastText = text
	f.lastStat = statKey(path)
	if w, err := fsnotify.NewWatcher(); err == nil {
		if err := w.Add(filepath.Dir(path)); err == nil {
			f.watcher = w
			go f.watch()
		} else {
			w.Close()
			f.log.Warn("cannot watch policy directory; polling only", "err", err.Error())
		}
	}
	go f.poll(poll)
	return f, nil
}

func (f *PolicyFile) Current() *policy.Policy { return f.current.Load() }

// Problem is "" while the policy in force is the file's; otherwise why not.
func (f *PolicyFile) Problem() string {
	if p := f.problem.Load(); p != nil {
		return *p
	}
	return ""
}

func (f *PolicyFile) Close() {
	close(f.stop)
	if f.watcher != nil {
		f.watcher.Close()
	}
}

func (f *PolicyFile) watch() {
	name := filepath.Base(f.path)
	for {
		select {
		case ev, ok := <-f.watcher.Events:
			if !ok {
				return
			}
			// ConfigMap updates rename "..data"; a plain file edit names the file.
			base := filepath.Base(ev.Name)
			if base == name || strings.HasPrefix(base, "..") {
				f.reload()
			}
		case err, ok := <-f.watcher.Errors:
			if !ok {
				return
			}
			f.log.Warn("policy watch failed; polling only", "err", err.Error())
		}
	}
}

func (f *PolicyFile) poll(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
			if key := statKey(f.path); key != f.lastStatLocked(key) {
				f.reload()
			}
		}
	}
}

// lastStatLocked swaps in the new stat key and returns the old one.
func (f *PolicyFile) lastStatLocked(key string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.lastStat
	f.lastStat = key
	return old
}

func (f *PolicyFile) reload() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.channelOwned.Load() {
		return
	}
	text, err := os.ReadFile(f.path)
	if err != nil {
		f.fail(fmt.Sprintf("cannot read policy: %v", err))
		f.acknowledge(f.ack.Refused(nil, *f.problem.Load()))
		return
	}
	if bytes.Equal(text, f.lastText) && f.Problem() == "" {
		return
	}
	f.lastText = text
	p, err := policy.FromText(text)
	if err != nil {
		f.fail(fmt.Sprintf("invalid policy: %v", err))
		f.acknowledge(f.ack.Refused(text, *f.problem.Load()))
		return
	}
	f.current.Store(p)
	f.problem.Store(nil)
	// After the swap, under the reload lock: the record never names a policy
	// before it is in force, and records land in the order of the loads.
	f.acknowledge(f.ack.Applied(text))
	f.log.Info("egress policy reloaded", "rules", len(p.Rules), "defaultAction", p.DefaultAction, "sha256", PolicyDigest(text))
}

// acknowledge logs a record that could not be written: the controller keeps
// reporting the sandbox's egress as pending, and the log says why.
func (f *PolicyFile) acknowledge(err error) {
	if err != nil {
		f.log.Error("cannot acknowledge the egress policy; the controller will report it pending", "err", err.Error())
	}
}

func (f *PolicyFile) fail(why string) {
	f.current.Store(policy.DenyAll)
	f.problem.Store(&why)
	f.log.Error("egress policy unusable; denying all egress until it is fixed", "err", why)
}

// statKey identifies the file's current content as stat sees it (following the symlink).
func statKey(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	return fmt.Sprintf("%v:%d:%d", st.ModTime().UnixNano(), st.Size(), inode(st))
}
