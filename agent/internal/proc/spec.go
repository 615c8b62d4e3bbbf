package proc

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"syscall"
	"time"

	"sandboxing.dev/sandbox-agent/internal/apierr"
)

// Spec is what a client asks to run (the JSON of POST /v1/exec's first frame
// and of POST /v1/processes).
type Spec struct {
	Argv []string          `json:"argv"`
	Env  map[string]string `json:"env,omitempty"`
	// Cwd defaults to the agent's working directory (the workload's).
	Cwd string `json:"cwd,omitempty"`
	// TimeoutMs kills the whole process group with SIGKILL when it runs out; 0 = none.
	TimeoutMs int64 `json:"timeoutMs,omitempty"`
	// Stdin: the client will send stdin; otherwise the process reads /dev/null.
	Stdin bool `json:"stdin,omitempty"`
	// Tty runs the process on a pseudo-terminal of this size (stdout and stderr merge).
	Tty *Size `json:"tty,omitempty"`
	// OutputLimitBytes: per stream, what a background process's ring buffers keep.
	OutputLimitBytes int `json:"outputLimitBytes,omitempty"`
}

type Size struct {
	Cols uint16 `json:"cols"`
	Rows uint16 `json:"rows"`
}

const (
	DefaultOutputLimit = 1 << 20
	MaxOutputLimit     = 16 << 20
	maxArgs            = 4096
)

func (s *Spec) Validate() error {
	bad := func(f string, a ...any) error {
		return apierr.New(http.StatusBadRequest, apierr.BadRequest, fmt.Sprintf(f, a...))
	}
	if len(s.Argv) == 0 || s.Argv[0] == "" {
		return bad("argv: at least the program to run is required")
	}
	if len(s.Argv) > maxArgs {
		return bad("argv: at most %d arguments", maxArgs)
	}
	for k := range s.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return bad("env: invalid variable name %q", k)
		}
	}
	if s.TimeoutMs < 0 {
		return bad("timeoutMs: must not be negative")
	}
	if s.Tty != nil && (s.Tty.Cols == 0 || s.Tty.Rows == 0) {
		return bad("tty: cols and rows must be positive")
	}
	if s.OutputLimitBytes < 0 || s.OutputLimitBytes > MaxOutputLimit {
		return bad("outputLimitBytes: between 0 and %d", MaxOutputLimit)
	}
	return nil
}

// ExitStatus is how a process ended: exactly one of ExitCode and Signal is set.
type ExitStatus struct {
	ExitCode   *int   `json:"exitCode"`
	Signal     string `json:"signal,omitempty"`
	TimedOut   bool   `json:"timedOut"`
	DurationMs int64  `json:"durationMs"`
}

// Info describes a process for list/get/wait.
type Info struct {
	ID          string      `json:"id"`
	Pid         int         `json:"pid"`
	Argv        []string    `json:"argv"`
	Cwd         string      `json:"cwd,omitempty"`
	Tty         bool        `json:"tty"`
	Background  bool        `json:"background"`
	StartedAt   time.Time   `json:"startedAt"`
	Running     bool        `json:"running"`
	Exit        *ExitStatus `json:"exit,omitempty"`
	StdoutBytes int64       `json:"stdoutBytes"`
	StderrBytes int64       `json:"stderrBytes"`
}

var signals = map[string]syscall.Signal{
	"SIGHUP": syscall.SIGHUP, "SIGINT": syscall.SIGINT, "SIGQUIT": syscall.SIGQUIT,
	"SIGKILL": syscall.SIGKILL, "SIGTERM": syscall.SIGTERM, "SIGUSR1": syscall.SIGUSR1,
	"SIGUSR2": syscall.SIGUSR2, "SIGSTOP": syscall.SIGSTOP, "SIGCONT": syscall.SIGCONT,
	"SIGALRM": syscall.SIGALRM, "SIGWINCH": syscall.SIGWINCH, "SIGPIPE": syscall.SIGPIPE,
	"SIGABRT": syscall.SIGABRT, "SIGSEGV": syscall.SIGSEGV, "SIGTSTP": syscall.SIGTSTP,
}

// ParseSignal accepts "SIGTERM", "TERM" or a number.
func ParseSignal(name string) (syscall.Signal, error) {
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	if s, ok := signals[n]; ok {
		return s, nil
	}
	var num int
	if _, err := fmt.Sscanf(name, "%d", &num); err == nil && num > 0 && num < 65 {
		return syscall.Signal(num), nil
	}
	return 0, apierr.New(http.StatusBadRequest, apierr.BadRequest, fmt.Sprintf("signal: unknown signal %q", name))
}

// SignalName is the inverse of ParseSignal for the signals it knows.
func SignalName(s syscall.Signal) string {
	for k, v := range signals {
		if v == s {
			return k
		}
	}
	return fmt.Sprintf("SIG%d", int(s))
}

// envList merges the agent's environment with the request's (request wins), sorted.
func envList(base []string, extra map[string]string) []string {
	m := make(map[string]string, len(base)+len(extra))
	for _, kv := range base {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	for k, v := range extra {
		m[k] = v
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
