package proc

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"sandboxing.dev/sandbox-agent/internal/apierr"
)

// A process that ends on its last input before the client's EOF arrives: the
// EOF is a no-op, and a later write is the client's conflict (409), never an
// agent failure (500). exec.Cmd.Wait closes our end of the pipe once the
// process ends, which is the window CI once hit (stdin with ?eof=true: 500).
func TestStdinAfterTheProcessEnded(t *testing.T) {
	for _, tty := range []bool{false, true} {
		spec := Spec{Argv: []string{"sh", "-c", "read line; exit 0"}, Stdin: true}
		if tty {
			spec.Tty = &Size{Cols: 80, Rows: 24}
		}
		p, err := start("t", spec, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.WriteStdin([]byte("hello\n")); err != nil {
			t.Fatalf("tty=%v: write: %v", tty, err)
		}
		select {
		case <-p.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("tty=%v: the process did not end", tty)
		}
		if err := p.CloseStdin(); err != nil {
			t.Errorf("tty=%v: EOF after the end: %v, want nil", tty, err)
		}
		err = p.WriteStdin([]byte("late\n"))
		var ae *apierr.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusConflict {
			t.Errorf("tty=%v: write after the end: %v, want a 409", tty, err)
		}
	}
}
