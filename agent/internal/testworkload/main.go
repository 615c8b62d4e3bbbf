// testworkload is a stand-in user program for tests of the agent's injection:
// a static binary in an image with no shell. As an entrypoint it waits for
// SIGTERM and exits 7, so a test sees that PID 1, signals and the exit code
// stay the workload's; as a command it echoes, fails, sleeps or reports its identity.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	args := os.Args[1:]
	if len(args) == 0 {
		args = []string{"serve"}
	}
	switch args[0] {
	case "serve":
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
		fmt.Println("workload started as pid", os.Getpid())
		s := <-ch
		fmt.Println("workload got", s)
		os.Exit(7)
	case "echo":
		fmt.Println(strings.Join(args[1:], " "))
	case "fail":
		n, _ := strconv.Atoi(args[1])
		fmt.Fprintln(os.Stderr, "failing with", n)
		os.Exit(n)
	case "sleep":
		ms, _ := strconv.Atoi(args[1])
		time.Sleep(time.Duration(ms) * time.Millisecond)
	case "id":
		fmt.Printf("uid=%d gid=%d pid=%d\n", os.Getuid(), os.Getgid(), os.Getpid())
	default:
		fmt.Fprintln(os.Stderr, "unknown command", args[0])
		os.Exit(2)
	}
}
