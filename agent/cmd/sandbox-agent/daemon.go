package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// startDaemon starts the agent again, detached (a session of its own, stdio
// on /dev/null), and returns once it accepts connections. This is the form
// a Kubernetes postStart hook needs: the hook must end, the agent must stay,
// and nothing of the hook's stdio may keep the runtime waiting. An agent
// already serving on the address (a repeated hook) counts as success: the
// new one cannot bind and exits.
func startDaemon(listen string, digest [32]byte) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	env := append(os.Environ(), DigestEnv+"="+hex.EncodeToString(digest[:]))
	p, err := os.StartProcess(self, []string{self, "--listen", listen}, &os.ProcAttr{
		Env:   env,
		Files: []*os.File{null, null, null},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		return err
	}
	_ = p.Release()
	addr := listen
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return errors.New(fmt.Sprint("the agent did not start serving on ", listen))
}
