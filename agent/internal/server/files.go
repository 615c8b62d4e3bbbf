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

func (s *Server) statFile(w http.ResponseWriter, r *http.Request) {
	path, ok := s.pathParam(w, r, "path")
	if !ok {
		return
	}
	info, err := files.Stat(path)
	if err != nil {
		apierr.Write(w, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) listDir(w http.ResponseWriter, r *http.Request) {
	path, ok := s.pathParam(w, r, "path")
	if !ok {
		return
	}
	entries, err := files.List(path)
	if err != nil {
		apierr.Write(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"path": path, "entries": entries})
}

func (s *Server) mkdir(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Path    string `json:"path"`
		Parents bool   `json:"parents"`
		Mode    string `json:"mode"`
	}
	if err := readJSON(r, &body); err != nil {
		apierr.Write(w, err)
		return
	}
	path, err := files.Resolve(s.cwd, body.Path)
	if err != nil {
		apierr.Write(w, err)
		return
	}
	mode, err := files.ParseMode(body.Mode)
	if err == nil {
		err = files.Mkdir(path, body.Parents, mode)
	}
	if err != nil {
		apierr.Write(w, err)
		return
	}
	info, err := files.Stat(path)
	if err != nil {
		apierr.Write(w, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) move(w http.ResponseWriter, r *http.Request) {
	var body struct {
		From      string `json:"from"`
		To        string `json:"to"`
		Overwrite bool   `json:"overwrite"`
	}
	if err := readJSON(r, &body); err != nil {
		apierr.Write(w, err)
		return
	}
	from, err := files.Resolve(s.cwd, body.From)
	if err != nil {
		apierr.Write(w, err)
		return
	}
	to, err := files.Resolve(s.cwd, body.To)
	if err == nil {
		err = files.Move(from, to, body.Overwrite)
	}
	if err != nil {
		apierr.Write(w, err)
		return
	}
	info, err := files.Stat(to)
	if err != nil {
		apierr.Write(w, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) remove(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Path      string `json:"path"`
		Recursive bool   `json:"recursive"`
	}
	if err := readJSON(r, &body); err != nil {
		apierr.Write(w, err)
		return
	}
	path, err := files.Resolve(s.cwd, body.Path)
	if err == nil {
		err = files.Remove(path, body.Recursive)
	}
	if err != nil {
		apierr.Write(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
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
