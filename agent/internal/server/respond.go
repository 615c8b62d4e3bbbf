package server

import (
	"net/http"

	"sandboxing.dev/sandbox-agent/internal/apierr"
)

// The shapes the JSON operations share — decode, run, map the error, answer —
// so each handler states only its own work.

// withJSONBody serves an operation whose request is a small JSON body.
func withJSONBody[T any](op func(r *http.Request, body T) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body T
		if err := readJSON(r, &body); err != nil {
			apierr.Write(w, err)
			return
		}
		v, err := op(r, body)
		respond(w, v, err)
	}
}

// withPath serves an operation on the path named by the query parameter "path".
func (s *Server) withPath(op func(path string) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		path, ok := s.pathParam(w, r, "path")
		if !ok {
			return
		}
		v, err := op(path)
		respond(w, v, err)
	}
}

// respond writes an operation's error, or its answer: 200 with the JSON value,
// 204 when the operation has nothing to say (a nil answer).
func respond(w http.ResponseWriter, v any, err error) {
	switch {
	case err != nil:
		apierr.Write(w, err)
	case v == nil:
		w.WriteHeader(http.StatusNoContent)
	default:
		writeJSON(w, http.StatusOK, v)
	}
}
