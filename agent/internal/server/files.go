package server

import (
	"net/http"
	"strconv"

	"sandboxing.dev/sandbox-agent/internal/apierr"
	"sandboxing.dev/sandbox-agent/internal/files"
)

func (s *Server) pathParam(w http.ResponseWriter, r *http.Request, name string) (string, bool) {
	p, err := files.Resolve(s.cwd, r.URL.Query().Get(name))
	if err != nil {
		apierr.Write(w, err)
		return "", false
	}
	return p, true
}

// readFile streams a file (or a byte range of it: offset, length).
func (s *Server) readFile(w http.ResponseWriter, r *http.Request) {
	path, ok := s.pathParam(w, r, "path")
	if !ok {
		return
	}
	off, err := int64Param(r, "offset")
	if err != nil {
		apierr.Write(w, err)
		return
	}
	length := int64(-1)
	if r.URL.Query().Get("length") != "" {
		if length, err = int64Param(r, "length"); err != nil {
			apierr.Write(w, err)
			return
		}
	}
	f, n, err := files.Open(path, off, length)
	if err != nil {
		apierr.Write(w, err)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	if n >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	}
	w.WriteHeader(http.StatusOK)
	buf := make([]byte, 256<<10)
	for {
		k, rerr := f.Read(buf)
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return
			}
		}
		if rerr != nil {
			return
		}
	}
}

// writeFile streams the body into a file: mode (octal), parents, append.
func (s *Server) writeFile(w http.ResponseWriter, r *http.Request) {
	path, ok := s.pathParam(w, r, "path")
	if !ok {
		return
	}
	q := r.URL.Query()
	mode, err := files.ParseMode(q.Get("mode"))
	if err != nil {
		apierr.Write(w, err)
		return
	}
	n, err := files.Write(path, r.Body, files.WriteOptions{
		Mode: mode, Parents: q.Get("parents") == "true", Append: q.Get("append") == "true",
	})
	if err != nil {
		apierr.Write(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"path": path, "bytes": n})
}

func (s *Server) statFile(path string) (any, error) {
	return stat(path)
}

func (s *Server) listDir(path string) (any, error) {
	entries, err := files.List(path)
	if err != nil {
		return nil, err
	}
	return map[string]any{"path": path, "entries": entries}, nil
}

type mkdirRequest struct {
	Path    string `json:"path"`
	Parents bool   `json:"parents"`
	Mode    string `json:"mode"`
}

func (s *Server) mkdir(_ *http.Request, body mkdirRequest) (any, error) {
	path, err := files.Resolve(s.cwd, body.Path)
	if err != nil {
		return nil, err
	}
	mode, err := files.ParseMode(body.Mode)
	if err != nil {
		return nil, err
	}
	if err := files.Mkdir(path, body.Parents, mode); err != nil {
		return nil, err
	}
	return stat(path)
}

type moveRequest struct {
	From      string `json:"from"`
	To        string `json:"to"`
	Overwrite bool   `json:"overwrite"`
}

func (s *Server) move(_ *http.Request, body moveRequest) (any, error) {
	from, err := files.Resolve(s.cwd, body.From)
	if err != nil {
		return nil, err
	}
	to, err := files.Resolve(s.cwd, body.To)
	if err != nil {
		return nil, err
	}
	if err := files.Move(from, to, body.Overwrite); err != nil {
		return nil, err
	}
	return stat(to)
}

type removeRequest struct {
	Path      string `json:"path"`
	Recursive bool   `json:"recursive"`
}

func (s *Server) remove(_ *http.Request, body removeRequest) (any, error) {
	path, err := files.Resolve(s.cwd, body.Path)
	if err != nil {
		return nil, err
	}
	return nil, files.Remove(path, body.Recursive)
}

// stat answers a path's metadata (an untyped nil on error, so respond sees the error).
func stat(path string) (any, error) {
	info, err := files.Stat(path)
	if err != nil {
		return nil, err
	}
	return info, nil
}

// download streams path as a tar archive. An error after the first byte can
// only cut the stream short (the client sees a truncated archive).
func (s *Server) download(w http.ResponseWriter, r *http.Request) {
	path, ok := s.pathParam(w, r, "path")
	if !ok {
		return
	}
	if _, err := files.Stat(path); err != nil {
		apierr.Write(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	if err := files.TarTo(w, path); err != nil {
		// Abort the chunked response so the client cannot take a partial archive for a whole one.
		panic(http.ErrAbortHandler)
	}
}

// upload extracts a tar stream into the directory path.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	path, ok := s.pathParam(w, r, "path")
	if !ok {
		return
	}
	sum, err := files.UntarFrom(r.Body, path)
	if err != nil {
		apierr.Write(w, err)
		return
	}
	writeJSON(w, http.StatusOK, sum)
}
