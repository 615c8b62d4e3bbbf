// Package server is the agent's HTTP API: one port, every route but /healthz
// behind the sandbox's bearer credential. The wire protocol is written down
// in docs/agent-protocol.md; the TypeScript client validates it with the zod
// schemas in src/dataplane/protocol.ts.
package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"sandboxing.dev/sandbox-agent/internal/activity"
	"sandboxing.dev/sandbox-agent/internal/apierr"
	"sandboxing.dev/sandbox-agent/internal/proc"
)

// ProtocolVersion changes when a client written for an older agent would misread a newer one.
const ProtocolVersion = 1

type Server struct {
	tokenHash [32]byte
	procs     *proc.Manager
	cwd       string
	version   string
	started   time.Time
	mux       *http.ServeMux
	// activity is moved by every authenticated call but the activity read
	// itself (docs/idle.md): the controller's idle check must not keep the
	// sandbox awake.
	activity *activity.Tracker
}

// New returns the API for one sandbox; token is its credential (non-empty).
func New(token, version string) *Server {
	return NewWithDigest(sha256.Sum256([]byte(token)), version)
}

// NewWithDigest takes only the credential's SHA-256: the form the pod backend
// hands the agent, so the credential itself never enters the sandbox (the
// workload, which runs as the agent's user, can read whatever the agent reads).
func NewWithDigest(digest [32]byte, version string) *Server {
	cwd, _ := os.Getwd()
	s := &Server{
		tokenHash: digest,
		procs:     proc.NewManager(),
		cwd:       cwd,
		version:   version,
		started:   time.Now(),
		mux:       http.NewServeMux(),
		activity:  activity.New(),
	}
	s.routes()
	return s
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	m.HandleFunc("GET /v1/version", s.auth(s.version_))
	// Read by the controller once per idle period; not itself use.
	m.HandleFunc("GET /v1/activity", s.authQuiet(s.readActivity))
	// The gateway's report of traffic it proxied to a declared port: use.
	m.HandleFunc("POST /v1/activity", s.auth(s.reportActivity))
	m.HandleFunc("POST /v1/exec", s.auth(s.exec))
	m.HandleFunc("POST /v1/processes", s.auth(s.startBackground))
	m.HandleFunc("GET /v1/processes", s.auth(s.listProcesses))
	m.HandleFunc("GET /v1/processes/{id}", s.auth(s.getProcess))
	m.HandleFunc("GET /v1/processes/{id}/wait", s.auth(s.waitProcess))
	m.HandleFunc("GET /v1/processes/{id}/output", s.auth(s.processOutput))
	m.HandleFunc("POST /v1/processes/{id}/signal", s.auth(withJSONBody(s.signalProcess)))
	m.HandleFunc("POST /v1/processes/{id}/stdin", s.auth(s.processStdin))
	m.HandleFunc("POST /v1/processes/{id}/resize", s.auth(withJSONBody(s.resizeProcess)))
	m.HandleFunc("DELETE /v1/processes/{id}", s.auth(s.deleteProcess))
	m.HandleFunc("GET /v1/files/content", s.auth(s.readFile))
	m.HandleFunc("PUT /v1/files/content", s.auth(s.writeFile))
	m.HandleFunc("GET /v1/files/stat", s.auth(s.withPath(s.statFile)))
	m.HandleFunc("GET /v1/files/list", s.auth(s.withPath(s.listDir)))
	m.HandleFunc("POST /v1/files/mkdir", s.auth(withJSONBody(s.mkdir)))
	m.HandleFunc("POST /v1/files/move", s.auth(withJSONBody(s.move)))
	m.HandleFunc("POST /v1/files/remove", s.auth(withJSONBody(s.remove)))
	m.HandleFunc("GET /v1/files/archive", s.auth(s.download))
	m.HandleFunc("PUT /v1/files/archive", s.auth(s.upload))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// Unknown routes answer 401 before 404 without the credential: nothing is disclosed.
		if !s.authorized(r) {
			apierr.Write(w, apierr.New(http.StatusUnauthorized, apierr.Unauthorized, "missing or wrong credential"))
			return
		}
		apierr.Write(w, apierr.New(http.StatusNotFound, apierr.NotFound, "no such route: "+r.Method+" "+r.URL.Path))
	})
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// authorized compares digests in constant time (the digest also hides the length).
func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return false
	}
	sum := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(sum[:], s.tokenHash[:]) == 1
}

// auth admits a call with the sandbox's credential and counts it as use of
// the sandbox for as long as it runs. Only authenticated calls count: whoever
// can reach the port without the credential cannot keep a sandbox awake.
func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return s.authQuiet(func(w http.ResponseWriter, r *http.Request) {
		defer s.activity.Begin()()
		h(w, r)
	})
}

// authQuiet admits a call with the credential without counting it as use.
func (s *Server) authQuiet(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sandbox-agent"`)
			apierr.Write(w, apierr.New(http.StatusUnauthorized, apierr.Unauthorized, "missing or wrong credential"))
			return
		}
		h(w, r)
	}
}

func (s *Server) readActivity(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.activity.Snapshot())
}

// reportActivity needs nothing but to have been called (auth counted it).
func (s *Server) reportActivity(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<10))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) version_(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"version": s.version, "protocol": ProtocolVersion, "pid": os.Getpid(),
		"uid": os.Getuid(), "gid": os.Getgid(), "cwd": s.cwd, "startedAt": s.started.UTC(),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// readJSON decodes a small JSON body strictly (unknown fields are a client bug worth reporting).
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apierr.New(http.StatusBadRequest, apierr.BadRequest, "body: "+err.Error())
	}
	return nil
}
