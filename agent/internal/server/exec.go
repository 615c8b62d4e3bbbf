package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"syscall"
	"time"

	"sandboxing.dev/sandbox-agent/internal/apierr"
	"sandboxing.dev/sandbox-agent/internal/frame"
	"sandboxing.dev/sandbox-agent/internal/proc"
)

// frameWriter serializes frames from the stdout and stderr copiers onto one
// response, flushing each so output reaches the client as it is produced.
// A slow client blocks the write, which fills the pipe, which blocks the
// process: memory stays bounded whatever the process writes.
type frameWriter struct {
	mu  sync.Mutex
	w   io.Writer
	rc  *http.ResponseController
	err error
}

func (f *frameWriter) send(t frame.Type, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	for len(p) > frame.MaxPayload {
		if f.err = frame.Write(f.w, t, p[:frame.MaxPayload]); f.err != nil {
			return f.err
		}
		p = p[frame.MaxPayload:]
	}
	if f.err = frame.Write(f.w, t, p); f.err == nil {
		f.err = f.rc.Flush()
	}
	return f.err
}

func (f *frameWriter) sendJSON(t frame.Type, v any) error {
	b, _ := json.Marshal(v)
	return f.send(t, b)
}

type streamWriter struct {
	f *frameWriter
	t frame.Type
}

func (s streamWriter) Write(p []byte) (int, error) {
	if err := s.f.send(s.t, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// exec runs one process for the length of this exchange: the request body
// carries the spec, then stdin, resize and signal frames; the response streams
// started, stdout, stderr and finally exit. If the client goes away, the
// process group is killed (a background process is what outlives a client).
func (s *Server) exec(w http.ResponseWriter, r *http.Request) {
	// An exec refused before it starts leaves request bytes unread: the
	// connection cannot carry another request.
	w.Header().Set("Connection", "close")
	rc := http.NewResponseController(w)
	// Read the request while writing the response (HTTP/1.1 full duplex).
	_ = rc.EnableFullDuplex()
	fr := frame.NewReader(r.Body)
	t, payload, err := fr.Read()
	if err != nil || t != frame.Spec {
		apierr.Write(w, apierr.New(http.StatusBadRequest, apierr.BadRequest, "the first frame must be the exec spec"))
		return
	}
	var spec proc.Spec
	if err := json.Unmarshal(payload, &spec); err != nil {
		apierr.Write(w, apierr.New(http.StatusBadRequest, apierr.BadRequest, "spec: "+err.Error()))
		return
	}
	if spec.Cwd == "" {
		spec.Cwd = s.cwd
	}
	fw := &frameWriter{w: w, rc: rc}
	p, err := s.procs.Start(spec, &proc.Outputs{
		Stdout: streamWriter{fw, frame.Stdout},
		Stderr: streamWriter{fw, frame.Stderr},
	})
	if err != nil {
		apierr.Write(w, err)
		return
	}
	w.Header().Del("Connection")
	w.Header().Set("Content-Type", "application/vnd.sandbox-agent.frames")
	w.Header().Set("X-Process-Id", p.ID)
	w.WriteHeader(http.StatusOK)
	_ = fw.sendJSON(frame.Started, map[string]any{"id": p.ID, "pid": p.Pid()})

	// Client frames until the body ends. A body that breaks off mid-way is a
	// client that went away: its process goes too.
	bodyDone := make(chan struct{})
	go func() {
		defer close(bodyDone)
		for {
			t, payload, err := fr.Read()
			if errors.Is(err, io.EOF) {
				_ = p.CloseStdin()
				return
			}
			if err != nil {
				_ = p.Signal(syscall.SIGKILL)
				return
			}
			handleClientFrame(p, t, payload)
		}
	}()
	select {
	case <-p.Done():
		_ = fw.sendJSON(frame.Exit, p.Exit())
	case <-r.Context().Done():
		_ = p.Signal(syscall.SIGKILL)
		<-p.Done()
		return
	}
	// The client ends its body when it sees the exit frame. Wait for that:
	// in full-duplex mode net/http neither drains an unread body nor closes
	// the connection, and would read the rest of it as the next request.
	select {
	case <-bodyDone:
	case <-time.After(bodyDrainTimeout):
		panic(http.ErrAbortHandler) // drop the connection rather than misread it
	}
}

// bodyDrainTimeout: how long a client may take to end its request body after the exit frame.
const bodyDrainTimeout = 5 * time.Second

func handleClientFrame(p *proc.Process, t frame.Type, payload []byte) {
	switch t {
	case frame.Stdin:
		_ = p.WriteStdin(payload)
	case frame.StdinEOF:
		_ = p.CloseStdin()
	case frame.Resize:
		var sz proc.Size
		if json.Unmarshal(payload, &sz) == nil {
			_ = p.Resize(sz)
		}
	case frame.Signal:
		var sig struct {
			Signal string `json:"signal"`
		}
		if json.Unmarshal(payload, &sig) == nil {
			if n, err := proc.ParseSignal(sig.Signal); err == nil {
				_ = p.Signal(n)
			}
		}
	}
}
