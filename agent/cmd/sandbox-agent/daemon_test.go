package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
