// sandbox-agent: the in-sandbox data plane. It runs inside the workload
// container, as the workload's user, beside the workload's own entrypoint
// (never in place of it), and serves exec, processes and files on one port
// behind the sandbox's credential.
//
//	sandbox-agent [--listen :15099] [--token-file F]   (or SANDBOX_AGENT_TOKEN)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"sandboxing.dev/sandbox-agent/internal/server"
)

// version is set at build time (-ldflags -X main.version=...).
var version = "dev"

// DefaultPort sits beside the egress sidecar's 15053/15080/15443 in the
// sandbox's network namespace.
const DefaultPort = 15099

// TokenEnv names the variable the credential may come in; it is removed from
// the agent's environment at once so no process the agent starts inherits it.
const TokenEnv = "SANDBOX_AGENT_TOKEN"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox-agent:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("sandbox-agent", flag.ContinueOnError)
	listen := fs.String("listen", fmt.Sprintf(":%d", DefaultPort), "address to serve on")
	tokenFile := fs.String("token-file", "", "file holding the credential (else $"+TokenEnv+")")
	showVersion := fs.Bool("version", false, "print the version and exit")
	daemon := fs.Bool("daemon", false, "start in the background and return once serving (for a post-start hook)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println(version)
		return nil
	}
	token := os.Getenv(TokenEnv)
	os.Unsetenv(TokenEnv)
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("reading the credential: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if len(token) < 16 {
		return errors.New("no credential: set " + TokenEnv + " or --token-file (at least 16 characters)")
	}
	if *daemon {
		return startDaemon(*listen, token)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	// Stderr may be a pipe nobody reads (a detached runtime exec): a write
	// there must not kill the agent with SIGPIPE.
	signal.Ignore(syscall.SIGPIPE)
	srv := &http.Server{
		Handler:           server.New(token, version),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(os.Stderr, "sandbox-agent %s listening on %s\n", version, ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
