package proc

import (
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"

	"sandboxing.dev/sandbox-agent/internal/apierr"
	"sandboxing.dev/sandbox-agent/internal/ring"
)

// pipeGrace is how long a finished process's output may still drain (a
// grandchild that inherited stdout can keep the pipe open forever; the process
// the client asked for has ended, so the exec ends too, like `docker exec`).
const pipeGrace = 2 * time.Second

// Process is one started program: a process group (or, with a TTY, a session)
// of its own, so a signal, a kill or a timeout reaches every descendant that
// did not deliberately leave the group.
type Process struct {
	ID         string
	spec       Spec
	background bool
	cmd        *exec.Cmd
	startedAt  time.Time

	mu       sync.Mutex
	stdin    io.WriteCloser // nil when the client sends no stdin
	tty      *os.File       // the terminal's controlling side
	timedOut bool
	exit     *ExitStatus
	done     chan struct{}

	// Background processes only: the output kept for later reads.
	Stdout, Stderr *ring.Buffer
	outCount       [2]*countingWriter
}

// Outputs receive a foreground process's output; a write may block (backpressure).
type Outputs struct {
	Stdout, Stderr io.Writer
}

type countingWriter struct {
	w  io.Writer
	mu sync.Mutex
	n  int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.mu.Lock()
	c.n += int64(n)
	c.mu.Unlock()
	return n, err
}

func (c *countingWriter) count() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// start runs spec; out nil means background (ring buffers).
func start(id string, spec Spec, out *Outputs) (*Process, error) {
	env := envList(os.Environ(), spec.Env)
	path, err := lookPath(spec.Argv[0], env, spec.Cwd)
	if err != nil {
		return nil, err
	}
	cmd := &exec.Cmd{Path: path, Args: spec.Argv, Env: env, Dir: spec.Cwd, WaitDelay: pipeGrace}
	p := &Process{ID: id, spec: spec, background: out == nil, cmd: cmd, done: make(chan struct{})}
	if out == nil {
		limit := spec.OutputLimitBytes
		if limit == 0 {
			limit = DefaultOutputLimit
		}
		p.Stdout, p.Stderr = ring.New(limit), ring.New(limit)
		out = &Outputs{Stdout: p.Stdout, Stderr: p.Stderr}
	}
	p.outCount = [2]*countingWriter{{w: out.Stdout}, {w: out.Stderr}}

	var copyDone chan struct{}
	if spec.Tty != nil {
		// Setsid + Setctty (pty.StartWithAttrs): a session of its own, the
		// terminal as its controlling tty, so job control and ^C work.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
		cmd.WaitDelay = 0
		tty, err := pty.StartWithAttrs(cmd, &pty.Winsize{Cols: spec.Tty.Cols, Rows: spec.Tty.Rows}, cmd.SysProcAttr)
		if err != nil {
			return nil, startError(err, spec.Argv[0])
		}
		p.tty = tty
		if spec.Stdin {
			p.stdin = tty
		}
		copyDone = make(chan struct{})
		go func() {
			// Reading the terminal ends with EIO once every holder of its other side is gone.
			_, _ = io.Copy(p.outCount[0], tty)
			close(copyDone)
		}()
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Stdout, cmd.Stderr = p.outCount[0], p.outCount[1]
		if spec.Stdin {
			w, err := cmd.StdinPipe()
			if err != nil {
				return nil, err
			}
			p.stdin = w
		}
		if err := cmd.Start(); err != nil {
			return nil, startError(err, spec.Argv[0])
		}
	}
	p.startedAt = time.Now()
	var timer *time.Timer
	if spec.TimeoutMs > 0 {
		timer = time.AfterFunc(time.Duration(spec.TimeoutMs)*time.Millisecond, func() {
			p.mu.Lock()
			p.timedOut = true
			p.mu.Unlock()
			_ = p.Signal(syscall.SIGKILL)
		})
	}
	go func() {
		err := cmd.Wait()
		if copyDone != nil {
			select {
			case <-copyDone:
			case <-time.After(pipeGrace):
			}
			_ = p.tty.Close()
		}
		if timer != nil {
			timer.Stop()
		}
		st := exitStatus(cmd, err)
		p.mu.Lock()
		st.TimedOut = p.timedOut
		st.DurationMs = time.Since(p.startedAt).Milliseconds()
		p.exit = st
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

func startError(err error, argv0 string) error {
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, exec.ErrNotFound) {
		return apierr.New(http.StatusBadRequest, apierr.NotExecutable, "executable not found: "+argv0)
	}
	if errors.Is(err, syscall.EACCES) {
		return apierr.New(http.StatusForbidden, "EACCES", "not executable or not permitted: "+argv0)
	}
	return err
}

func exitStatus(cmd *exec.Cmd, err error) *ExitStatus {
	st := &ExitStatus{}
	ps := cmd.ProcessState
	if ps == nil {
		code := -1
		st.ExitCode = &code
		return st
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		st.Signal = SignalName(ws.Signal())
		return st
	}
	code := ps.ExitCode()
	st.ExitCode = &code
	return st
}

// lookPath resolves a bare program name against the PATH the process will
// get (the request may change it), as a shell would.
func lookPath(name string, env []string, cwd string) (string, error) {
	if strings.Contains(name, "/") {
		if !filepath.IsAbs(name) && cwd != "" {
			return filepath.Join(cwd, name), nil
		}
		return name, nil
	}
	pathVar := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v
		}
	}
	for _, dir := range filepath.SplitList(pathVar) {
		if dir == "" {
			dir = "."
		}
		f := filepath.Join(dir, name)
		if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return f, nil
		}
	}
	return "", apierr.New(http.StatusBadRequest, apierr.NotExecutable, "executable not found in PATH: "+name)
}

// Signal sends sig to the process's whole group.
func (p *Process) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	err := syscall.Kill(-p.cmd.Process.Pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// WriteStdin forwards bytes to the process's stdin.
func (p *Process) WriteStdin(b []byte) error {
	if p.stdin == nil {
		return apierr.New(http.StatusConflict, apierr.Conflict, "the process was started without stdin")
	}
	_, err := p.stdin.Write(b)
	if stdinGone(err) {
		return apierr.New(http.StatusConflict, apierr.Conflict, "the process's stdin is closed: it has ended, or was sent EOF")
	}
	return err
}

// stdinGone: the pipe's read end is gone (EPIPE) or our end was closed,
// by CloseStdin or by exec.Cmd.Wait once the process ended (it closes the
// parent's end of a StdinPipe). Either way a late write is the client's
// conflict with the process's state, not the agent's failure.
func stdinGone(err error) bool {
	return errors.Is(err, os.ErrClosed) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.EIO)
}

// CloseStdin sends EOF (with a TTY: the terminal's EOF character, ^D). On a
// process that has already ended, or whose stdin is already closed, it is
// done already: a client that writes its last input with EOF cannot know
// whether the process ended on that input before the EOF (nil, not an error).
func (p *Process) CloseStdin() error {
	if p.stdin == nil {
		return nil
	}
	var err error
	if p.tty != nil {
		_, err = p.tty.Write([]byte{4})
	} else {
		err = p.stdin.Close()
	}
	if stdinGone(err) {
		return nil
	}
	return err
}

func (p *Process) Resize(s Size) error {
	if p.tty == nil {
		return apierr.New(http.StatusConflict, apierr.Conflict, "the process has no terminal")
	}
	if s.Cols == 0 || s.Rows == 0 {
		return apierr.New(http.StatusBadRequest, apierr.BadRequest, "cols and rows must be positive")
	}
	return pty.Setsize(p.tty, &pty.Winsize{Cols: s.Cols, Rows: s.Rows})
}

func (p *Process) Done() <-chan struct{} { return p.done }

func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exit is nil while the process runs.
func (p *Process) Exit() *ExitStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exit
}

func (p *Process) Info() Info {
	exit := p.Exit()
	return Info{
		ID: p.ID, Pid: p.Pid(), Argv: p.spec.Argv, Cwd: p.spec.Cwd, Tty: p.tty != nil,
		Background: p.background, StartedAt: p.startedAt, Running: exit == nil, Exit: exit,
		StdoutBytes: p.outCount[0].count(), StderrBytes: p.outCount[1].count(),
	}
}
