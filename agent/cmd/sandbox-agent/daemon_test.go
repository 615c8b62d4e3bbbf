package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sandboxing.dev/sandbox-agent/internal/agenttest"
)

// The post-start form: the command returns at once with the agent serving,
// detached; a second start is harmless.
func TestDaemonReturnsOnceServing(t *testing.T) {
	port := freePort()
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	start := func() {
		t0 := time.Now()
		out, err := exec.Command(agentBin, "--daemon", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--token-file", tokenFile).CombinedOutput()
		if err != nil {
			t.Fatalf("--daemon: %v %s", err, out)
		}
		t.Logf("--daemon returned after %v", time.Since(t0))
	}
	start()
	c := agenttest.New(fmt.Sprintf("http://127.0.0.1:%d", port), token)
	var v struct{ Pid int }
	if st := c.JSON(t, "GET", "/v1/version", nil, nil, &v); st != 200 {
		t.Fatalf("version: %d", st)
	}
	defer func() {
		p, _ := os.FindProcess(v.Pid)
		p.Kill()
	}()
	start() // again: the running agent stays, the command still succeeds
	var v2 struct{ Pid int }
	c.JSON(t, "GET", "/v1/version", nil, nil, &v2)
	if v2.Pid != v.Pid {
		t.Errorf("a second --daemon replaced the agent: %d -> %d", v.Pid, v2.Pid)
	}
}

// The pod backend's form: only the credential's digest is in the sandbox;
// the credential opens the API, the digest itself does not.
func TestDaemonWithDigestOnly(t *testing.T) {
	port := freePort()
	digestFile := filepath.Join(t.TempDir(), "token.sha256")
	sum := sha256.Sum256([]byte(token))
	os.WriteFile(digestFile, []byte(hex.EncodeToString(sum[:])+"\n"), 0o444)
	out, err := exec.Command(agentBin, "--daemon", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--token-sha256-file", digestFile).CombinedOutput()
	if err != nil {
		t.Fatalf("--daemon: %v %s", err, out)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	var v struct{ Pid int }
	if st := agenttest.New(base, token).JSON(t, "GET", "/v1/version", nil, nil, &v); st != 200 {
		t.Fatalf("version with the credential: %d", st)
	}
	defer func() {
		p, _ := os.FindProcess(v.Pid)
		p.Kill()
	}()
	if st := agenttest.New(base, hex.EncodeToString(sum[:])).JSON(t, "GET", "/v1/version", nil, nil, nil); st != 401 {
		t.Errorf("the digest used as a credential: %d, want 401", st)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("not hex"), 0o444)
	if out, err := exec.Command(agentBin, "--listen", "127.0.0.1:0", "--token-sha256-file", bad).CombinedOutput(); err == nil || !strings.Contains(string(out), "64 hex digits") {
		t.Errorf("a bad digest: %v %s", err, out)
	}
}
