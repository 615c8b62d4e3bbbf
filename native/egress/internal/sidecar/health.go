package sidecar

import (
	"net"
	"net/http"
	"time"
)

// Two endpoints. The probe one listens on every address (the kubelet probes
// the Pod's IP), so it answers /healthz and /readyz with a status and "ok" or
// "not ready", nothing else. /metrics and the reasons a readiness check fails
// are served on the metrics port, bound to loopback.
func (s *Sidecar) observabilityHandler(probesOnly bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metrics":
			if probesOnly {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			_, _ = w.Write([]byte(s.decisions.Metrics()))
		case "/healthz", "/livez":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte("ok\n"))
		case "/readyz":
			w.Header().Set("Content-Type", "text/plain")
			problem := s.problem()
			if problem == "" {
				_, _ = w.Write([]byte("ok\n"))
				return
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			if probesOnly {
				_, _ = w.Write([]byte("not ready\n"))
			} else {
				_, _ = w.Write([]byte("policy: " + problem + "\n"))
			}
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})
}

func serveObservability(l net.Listener, h http.Handler) *http.Server {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return srv
}
