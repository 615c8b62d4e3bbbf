// sandbox-agent: the in-sandbox data plane. It runs inside the workload
// container, as the workload's user, beside the workload's own entrypoint
// (never in place of it), and serves exec, processes and files on one port
// behind the sandbox's credential.
//
//	sandbox-agent [--listen :15099] [--daemon] [--token-file F | --token-sha256-file F]
//	              (or SANDBOX_AGENT_TOKEN / SANDBOX_AGENT_TOKEN_SHA256)
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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

	"sandboxing.dev/sandbox-agent/internal/idle"
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

// DigestEnv carries the credential's SHA-256 (hex) instead of the credential:
// how --daemon hands a digest to the agent it starts.
const DigestEnv = "SANDBOX_AGENT_TOKEN_SHA256"

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
	digestFile := fs.String("token-sha256-file", "", "file holding the credential's SHA-256 in hex (else $"+DigestEnv+"): the credential itself stays outside the sandbox")
	showVersion := fs.Bool("version", false, "print the version and exit")
	daemon := fs.Bool("daemon", false, "start in the background and return once serving (for a post-start hook)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println(version)
		return nil
	}
	digest, err := credential(*tokenFile, *digestFile)
	if err != nil {
		return err
	}
	if *daemon {
		return startDaemon(*listen, digest)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	// Stderr may be a pipe nobody reads (a detached runtime exec): a write
	// there must not kill the agent with SIGPIPE.
	signal.Ignore(syscall.SIGPIPE)
	srv := &http.Server{
		// Idle for a second: give the memory of the last burst back (internal/idle).
		Handler:           idle.Handler(server.NewWithDigest(digest, version), time.Second),
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

// credential reads the SHA-256 of the sandbox's credential from wherever it
// was given (a flag's file, else the environment), and removes both variables
// from the agent's environment at once so no process it starts inherits them.
func credential(tokenFile, digestFile string) ([32]byte, error) {
	var digest [32]byte
	token, hexDigest := os.Getenv(TokenEnv), os.Getenv(DigestEnv)
	os.Unsetenv(TokenEnv)
	os.Unsetenv(DigestEnv)
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return digest, fmt.Errorf("reading the credential: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if digestFile != "" {
		b, err := os.ReadFile(digestFile)
		if err != nil {
			return digest, fmt.Errorf("reading the credential's digest: %w", err)
		}
		hexDigest = string(b)
	}
	if hexDigest = strings.TrimSpace(hexDigest); hexDigest != "" && token == "" {
		b, err := hex.DecodeString(hexDigest)
		if err != nil || len(b) != len(digest) {
			return digest, errors.New("the credential's digest is not 64 hex digits")
		}
		copy(digest[:], b)
		return digest, nil
	}
	if len(token) < 16 {
		return digest, errors.New("no credential: set " + TokenEnv + ", --token-file or --token-sha256-file (at least 16 characters)")
	}
	return sha256.Sum256([]byte(token)), nil
}
