package server

import (
	"encoding/base64"
	"io"
	"net/http"
	"strconv"
	"time"

	"sandboxing.dev/sandbox-agent/internal/apierr"
	"sandboxing.dev/sandbox-agent/internal/proc"
)

// maxWait bounds one long poll; a client waiting longer asks again.
const maxWait = 5 * time.Minute

func (s *Server) startBackground(w http.ResponseWriter, r *http.Request) {
	var spec proc.Spec
	if err := readJSON(r, &spec); err != nil {
		apierr.Write(w, err)
		return
	}
	if spec.Cwd == "" {
		spec.Cwd = s.cwd
	}
	p, err := s.procs.Start(spec, nil)
	if err != nil {
		apierr.Write(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, p.Info())
}

func (s *Server) listProcesses(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"processes": s.procs.List()})
}

func (s *Server) process(w http.ResponseWriter, r *http.Request) *proc.Process {
	p, err := s.procs.Get(r.PathValue("id"))
	if err != nil {
		apierr.Write(w, err)
		return nil
	}
	return p
}

func (s *Server) getProcess(w http.ResponseWriter, r *http.Request) {
	if p := s.process(w, r); p != nil {
		writeJSON(w, http.StatusOK, p.Info())
	}
}

// waitProcess long-polls until the process ends or timeoutMs passes (then running is still true).
func (s *Server) waitProcess(w http.ResponseWriter, r *http.Request) {
	p := s.process(w, r)
	if p == nil {
		return
	}
	d, err := durationParam(r, "timeoutMs", maxWait)
	if err != nil {
		apierr.Write(w, err)
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.Done():
	case <-t.C:
	case <-r.Context().Done():
		return
	}
	writeJSON(w, http.StatusOK, p.Info())
}

type chunk struct {
	Data  string `json:"data"` // base64
	Start int64  `json:"start"`
	End   int64  `json:"end"`
}

// processOutput returns what the ring buffers hold from the given offsets on;
// with waitMs it long-polls until there is something new or the process ended.
func (s *Server) processOutput(w http.ResponseWriter, r *http.Request) {
	p := s.process(w, r)
	if p == nil {
		return
	}
	if p.Stdout == nil {
		apierr.Write(w, apierr.New(http.StatusConflict, apierr.Conflict, "a foreground process streams its output to its exec call"))
		return
	}
	so, err1 := int64Param(r, "stdoutOffset")
	eo, err2 := int64Param(r, "stderrOffset")
	d, err3 := durationParam(r, "waitMs", 0)
	for _, err := range []error{err1, err2, err3} {
		if err != nil {
			apierr.Write(w, err)
			return
		}
	}
	if d > 0 && p.Stdout.Written() <= so && p.Stderr.Written() <= eo {
		t := time.NewTimer(d)
		select {
		case <-p.Stdout.Changed():
		case <-p.Stderr.Changed():
		case <-p.Done():
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
	}
	info := p.Info()
	read := func(b interface {
		ReadFrom(int64) ([]byte, int64, int64)
	}, off int64) chunk {
		data, start, end := b.ReadFrom(off)
		return chunk{Data: base64.StdEncoding.EncodeToString(data), Start: start, End: end}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"stdout": read(p.Stdout, so), "stderr": read(p.Stderr, eo),
		"running": info.Running, "exit": info.Exit,
	})
}

type signalRequest struct {
	Signal string `json:"signal"`
}

func (s *Server) signalProcess(r *http.Request, body signalRequest) (any, error) {
	p, err := s.procs.Get(r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	sig, err := proc.ParseSignal(body.Signal)
	if err != nil {
		return nil, err
	}
	return nil, p.Signal(sig)
}

// processStdin appends the body to the process's stdin; ?eof=true closes it after.
func (s *Server) processStdin(w http.ResponseWriter, r *http.Request) {
	p := s.process(w, r)
	if p == nil {
		return
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Body.Read(buf)
		if n > 0 {
			if werr := p.WriteStdin(buf[:n]); werr != nil {
				apierr.Write(w, werr)
				return
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return
		}
	}
	if r.URL.Query().Get("eof") == "true" {
		if err := p.CloseStdin(); err != nil {
			apierr.Write(w, err)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) resizeProcess(r *http.Request, size proc.Size) (any, error) {
	p, err := s.procs.Get(r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return nil, p.Resize(size)
}

// deleteProcess kills a running process (its group) and forgets it.
func (s *Server) deleteProcess(w http.ResponseWriter, r *http.Request) {
	p := s.process(w, r)
	if p == nil {
		return
	}
	_ = p.Signal(9)
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
	}
	s.procs.Remove(p.ID)
	w.WriteHeader(http.StatusNoContent)
}

func int64Param(r *http.Request, name string) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, apierr.New(http.StatusBadRequest, apierr.BadRequest, name+": not a non-negative integer")
	}
	return n, nil
}

func durationParam(r *http.Request, name string, def time.Duration) (time.Duration, error) {
	if r.URL.Query().Get(name) == "" {
		return def, nil
	}
	n, err := int64Param(r, name)
	if err != nil {
		return 0, err
	}
	return min(time.Duration(n)*time.Millisecond, maxWait), nil
}
