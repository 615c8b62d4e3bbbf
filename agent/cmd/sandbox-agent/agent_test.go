package main

// End-to-end tests of the built agent binary: started as an unprivileged user
// (65534) in a mount namespace of its own where one directory is a read-only
// bind mount, so the kernel's refusals are real. The list follows item 6 of
// issue 16 for the agent alone; the docker tests repeat the essentials inside
// a real container.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sandboxing.dev/sandbox-agent/internal/agenttest"
	"sandboxing.dev/sandbox-agent/internal/frame"
)

const (
	token      = "test-token-0123456789abcdef"
	otherToken = "other-sandbox-token-0123456789"
	uid        = 65534
)

var (
	agentBin string
	work     string // writable by uid 65534
	roDir    string // read-only bind mount
	client   *agenttest.Client
	agentPid int
	readyIn  time.Duration
)

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func freePort() int {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func setup(m *testing.M) (int, error) {
	tmp, err := os.MkdirTemp("", "sbx-agent-test-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	os.Chmod(tmp, 0o755)
	agentBin = filepath.Join(tmp, "sandbox-agent")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=test", "-o", agentBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("build: %v\n%s", err, out)
	}
	work = filepath.Join(tmp, "work")
	roDir = filepath.Join(tmp, "ro")
	for _, d := range []string{work, roDir} {
		os.Mkdir(d, 0o755)
		os.Chown(d, uid, uid)
	}
	os.WriteFile(filepath.Join(roDir, "existing.txt"), []byte("read me"), 0o644)
	os.WriteFile(filepath.Join(tmp, "root-only.txt"), []byte("secret"), 0o600)

	port := freePort()
	script := fmt.Sprintf(`mount --bind %[1]s %[1]s && mount -o remount,bind,ro %[1]s && cd %[2]s && exec setpriv --reuid=%[3]d --regid=%[3]d --clear-groups %[4]s --listen 127.0.0.1:%[5]d`,
		roDir, work, uid, agentBin, port)
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(os.Environ(), TokenEnv+"="+token, "AGENT_TEST_MARKER=inherited")
	cmd.Stderr = os.Stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	client = agenttest.New(fmt.Sprintf("http://127.0.0.1:%d", port), token)
	for {
		resp, err := client.Do("GET", "/healthz", nil, nil)
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Since(t0) > 5*time.Second {
			return 0, fmt.Errorf("agent not ready: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	readyIn = time.Since(t0)
	agentPid = cmd.Process.Pid // sh execs setpriv execs the agent: same pid
	return m.Run(), nil
}

func runArgv(t *testing.T, argv ...string) *agenttest.Result {
	t.Helper()
	res, err := client.Exec(map[string]any{"argv": argv}, agenttest.ExecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func rssKiB(t *testing.T, key string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", agentPid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	t.Fatalf("no %s in status", key)
	return 0
}

func TestReadyAndIdleFootprint(t *testing.T) {
	// Ready includes unshare, two mounts and setpriv; the agent's part is a fraction.
	t.Logf("ready after %v (incl. unshare+mount+setpriv), idle RSS %d KiB", readyIn, rssKiB(t, "VmRSS"))
	if readyIn > 500*time.Millisecond {
		t.Errorf("agent took %v to answer /healthz", readyIn)
	}
	if rss := rssKiB(t, "VmRSS"); rss > 8*1024 {
		t.Errorf("idle RSS %d KiB > 8 MiB", rss)
	}
}

func TestCredentialIsRequired(t *testing.T) {
	for name, tok := range map[string]string{"none": "", "another sandbox's": otherToken, "prefix": token[:10]} {
		c := agenttest.New(client.Base, tok)
		var body struct{ Error struct{ Code string } }
		for _, path := range []string{"/v1/version", "/v1/processes", "/v1/files/list?path=/"} {
			if st := c.JSON(t, "GET", path, nil, nil, &body); st != 401 || body.Error.Code != "UNAUTHORIZED" {
				t.Errorf("%s credential on %s: status %d code %q, want 401 UNAUTHORIZED", name, path, st, body.Error.Code)
			}
		}
		res, err := c.Exec(map[string]any{"argv": []string{"true"}}, agenttest.ExecOptions{})
		if err != nil || res.Status != 401 {
			t.Errorf("%s credential on exec: %v status %d", name, err, res.Status)
		}
	}
	var v struct {
		Version  string
		Protocol int
		UID      int
	}
	if st := client.JSON(t, "GET", "/v1/version", nil, nil, &v); st != 200 || v.Version != "test" || v.Protocol != 1 || v.UID != uid {
		t.Errorf("version: %d %+v", st, v)
	}
}

func TestExitCodesAndSignals(t *testing.T) {
	if r := runArgv(t, "true"); r.ExitCode == nil || *r.ExitCode != 0 {
		t.Errorf("true: %+v", r)
	}
	if r := runArgv(t, "sh", "-c", "exit 42"); r.ExitCode == nil || *r.ExitCode != 42 {
		t.Errorf("exit 42: %+v", r)
	}
	if r := runArgv(t, "sh", "-c", "kill -TERM $$"); r.ExitCode != nil || r.Signal != "SIGTERM" {
		t.Errorf("kill -TERM: exit %v signal %q", r.ExitCode, r.Signal)
	}
	r := runArgv(t, "no-such-program-xyz")
	if r.Status != 400 || r.Error["code"] != "NOT_EXECUTABLE" {
		t.Errorf("missing program: %d %v", r.Status, r.Error)
	}
	r = runArgv(t)
	if r.Status != 400 || r.Error["code"] != "BAD_REQUEST" {
		t.Errorf("empty argv: %d %v", r.Status, r.Error)
	}
}

func TestStdoutStderrSeparateAndEnv(t *testing.T) {
	res, err := client.Exec(map[string]any{
		"argv": []string{"sh", "-c", `echo out; echo err >&2; echo "$FOO $AGENT_TEST_MARKER ${SANDBOX_AGENT_TOKEN:-unset}"; pwd`},
		"env":  map[string]string{"FOO": "bar baz"},
		"cwd":  "/tmp",
	}, agenttest.ExecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res.Stdout); got != "out\nbar baz inherited unset\n/tmp\n" {
		t.Errorf("stdout %q", got)
	}
	if got := string(res.Stderr); got != "err\n" {
		t.Errorf("stderr %q", got)
	}
}

func TestStdin(t *testing.T) {
	in := make([]byte, 3<<20)
	rand.Read(in)
	res, err := client.Exec(map[string]any{"argv": []string{"sha256sum"}}, agenttest.ExecOptions{Stdin: bytes.NewReader(in)})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%x  -\n", sha256.Sum256(in))
	if string(res.Stdout) != want {
		t.Errorf("sha256sum of stdin: %q, want %q", res.Stdout, want)
	}
}

func TestLargeOutputBoundedMemory(t *testing.T) {
	before := rssKiB(t, "VmRSS")
	var n int64
	res, err := client.Exec(map[string]any{"argv": []string{"head", "-c", "104857600", "/dev/zero"}},
		agenttest.ExecOptions{OnStdout: func(b []byte) { n += int64(len(b)) }})
	if err != nil {
		t.Fatal(err)
	}
	if n != 100<<20 || res.ExitCode == nil || *res.ExitCode != 0 {
		t.Fatalf("got %d bytes, exit %v", n, res.ExitCode)
	}
	hwm := rssKiB(t, "VmHWM")
	t.Logf("100 MiB streamed in %d frames; RSS before %d KiB, high-water mark %d KiB", res.Frames, before, hwm)
	if hwm > 32*1024 {
		t.Errorf("RSS high-water mark %d KiB: output is not streamed in bounded memory", hwm)
	}
}

func TestTimeoutKillsTheProcessTree(t *testing.T) {
	start := time.Now()
	res, err := client.Exec(map[string]any{
		"argv":      []string{"sh", "-c", "sleep 1000 & echo $!; sh -c 'sleep 1000' & echo $!; wait"},
		"timeoutMs": 300,
	}, agenttest.ExecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut || res.Signal != "SIGKILL" {
		t.Fatalf("timedOut %v signal %q", res.TimedOut, res.Signal)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
	for _, pid := range strings.Fields(string(res.Stdout)) {
		n, _ := strconv.Atoi(pid)
		deadline := time.Now().Add(2 * time.Second)
		for alive(n) {
			if time.Now().After(deadline) {
				t.Errorf("descendant %d survived the timeout", n)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// alive: exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndex(s, ")")
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

func TestSignalFrameAndClientDisconnectKill(t *testing.T) {
	res, err := client.Exec(map[string]any{"argv": []string{"sleep", "100"}},
		agenttest.ExecOptions{Extra: [][2]any{{frame.Signal, map[string]string{"signal": "SIGINT"}}}})
	if err != nil || res.Signal != "SIGINT" {
		t.Fatalf("signal frame: %v %+v", err, res)
	}
	// A client that goes away takes its foreground process with it.
	conn, err := net.Dial("tcp", strings.TrimPrefix(client.Base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(work, "fg-pid")
	spec := fmt.Sprintf(`{"argv":["sh","-c","echo $$ > %s; exec sleep 100"]}`, marker)
	var req bytes.Buffer
	fmt.Fprintf(&req, "POST /v1/exec HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n", token)
	var f bytes.Buffer
	frame.Write(&f, frame.Spec, []byte(spec))
	fmt.Fprintf(&req, "%x\r\n%s\r\n", f.Len(), f.Bytes())
	conn.Write(req.Bytes())
	br := bufio.NewReader(conn)
	line, _ := br.ReadString('\n')
	if !strings.Contains(line, "200") {
		t.Fatalf("status line %q", line)
	}
	var pid int
	for i := 0; i < 200 && pid == 0; i++ {
		b, _ := os.ReadFile(marker)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		time.Sleep(10 * time.Millisecond)
	}
	if pid == 0 || !alive(pid) {
		t.Fatalf("process did not start (pid %d)", pid)
	}
	conn.Close()
	deadline := time.Now().Add(3 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatal("foreground process survived its client")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHundredConcurrentExecs(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := client.Exec(map[string]any{"argv": []string{"sh", "-c", fmt.Sprintf("echo %d; sleep 0.2; echo e%d >&2; exit %d", i, i, i%7)}}, agenttest.ExecOptions{})
			switch {
			case err != nil:
				errs <- err
			case string(res.Stdout) != fmt.Sprintf("%d\n", i) || string(res.Stderr) != fmt.Sprintf("e%d\n", i) || *res.ExitCode != i%7:
				errs <- fmt.Errorf("exec %d: %q %q %v", i, res.Stdout, res.Stderr, *res.ExitCode)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("RSS high-water mark after 100 concurrent execs: %d KiB", rssKiB(t, "VmHWM"))
}

type procInfo struct {
	ID      string
	Pid     int
	Running bool
	Exit    *struct {
		ExitCode *int
		Signal   string
	}
}

func TestBackgroundProcessSurvivesTheClient(t *testing.T) {
	var p procInfo
	c := agenttest.New(client.Base, token) // its own connections, closed below
	if st := c.JSON(t, "POST", "/v1/processes", nil, map[string]any{
		"argv": []string{"sh", "-c", "echo started; read line; echo got $line; echo warn >&2; exit 3"}, "stdin": true,
	}, &p); st != 201 || !p.Running {
		t.Fatalf("start: %d %+v", st, p)
	}
	c.HTTP.CloseIdleConnections()
	time.Sleep(200 * time.Millisecond)

	var list struct{ Processes []procInfo }
	client.JSON(t, "GET", "/v1/processes", nil, nil, &list)
	found := false
	for _, q := range list.Processes {
		found = found || (q.ID == p.ID && q.Running)
	}
	if !found {
		t.Fatalf("background process not listed as running after the client left: %+v", list)
	}
	resp, err := client.Do("POST", "/v1/processes/"+p.ID+"/stdin", url.Values{"eof": {"true"}}, strings.NewReader("hello\n"))
	if err != nil {
		t.Fatalf("stdin: %v", err)
	}
	if resp.StatusCode != 204 {
		body, _ := io.ReadAll(resp.Body)
		var now procInfo
		client.JSON(t, "GET", "/v1/processes/"+p.ID, nil, nil, &now)
		t.Fatalf("stdin: %v %s (the process now: %+v)", resp.Status, body, now)
	}
	var done procInfo
	client.JSON(t, "GET", "/v1/processes/"+p.ID+"/wait", url.Values{"timeoutMs": {"5000"}}, nil, &done)
	if done.Running || done.Exit == nil || *done.Exit.ExitCode != 3 {
		t.Fatalf("wait: %+v", done)
	}
	var out struct {
		Stdout, Stderr struct {
			Data       string
			Start, End int64
		}
	}
	client.JSON(t, "GET", "/v1/processes/"+p.ID+"/output", nil, nil, &out)
	so, _ := base64.StdEncoding.DecodeString(out.Stdout.Data)
	se, _ := base64.StdEncoding.DecodeString(out.Stderr.Data)
	if string(so) != "started\ngot hello\n" || string(se) != "warn\n" {
		t.Errorf("output %q %q", so, se)
	}
	// Output read from an offset, then kill + forget of a running one.
	client.JSON(t, "GET", "/v1/processes/"+p.ID+"/output", url.Values{"stdoutOffset": {"8"}}, nil, &out)
	if so, _ := base64.StdEncoding.DecodeString(out.Stdout.Data); string(so) != "got hello\n" || out.Stdout.Start != 8 {
		t.Errorf("from offset 8: %q start %d", so, out.Stdout.Start)
	}
	var s procInfo
	client.JSON(t, "POST", "/v1/processes", nil, map[string]any{"argv": []string{"sleep", "100"}}, &s)
	resp, _ = client.Do("DELETE", "/v1/processes/"+s.ID, nil, nil)
	if resp.StatusCode != 204 || alive(s.Pid) {
		t.Errorf("delete: %d alive %v", resp.StatusCode, alive(s.Pid))
	}
	if st := client.JSON(t, "GET", "/v1/processes/"+s.ID, nil, nil, nil); st != 404 {
		t.Errorf("deleted process still there: %d", st)
	}
}

func TestTTY(t *testing.T) {
	res, err := client.Exec(map[string]any{
		"argv": []string{"sh", "-c", "tty >/dev/null && echo is-a-tty; stty size; read x; stty size; echo got=$x"},
		"tty":  map[string]int{"cols": 80, "rows": 24},
	}, agenttest.ExecOptions{
		Extra: [][2]any{{frame.Resize, map[string]int{"cols": 100, "rows": 40}}},
		Stdin: strings.NewReader("typed\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	out := strings.ReplaceAll(string(res.Stdout), "\r", "")
	// The size line comes before or after the resize lands; the final one is the new size.
	if !strings.Contains(out, "is-a-tty\n") || !strings.Contains(out, "40 100\ngot=typed") || *res.ExitCode != 0 {
		t.Errorf("tty output %q exit %v", out, res.ExitCode)
	}
}

func TestFileRoundTrip50MB(t *testing.T) {
	data := make([]byte, 50<<20)
	rand.Read(data)
	path := filepath.Join(work, "big file ✓.bin")
	var w struct{ Bytes int64 }
	if st := put(t, path, bytes.NewReader(data), nil, &w); st != 200 || w.Bytes != int64(len(data)) {
		t.Fatalf("write: %d %+v", st, w)
	}
	resp, err := client.Do("GET", "/v1/files/content", url.Values{"path": {path}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, _ := io.Copy(h, resp.Body)
	resp.Body.Close()
	if n != int64(len(data)) || !bytes.Equal(h.Sum(nil), sha256Of(data)) {
		t.Fatalf("read back %d bytes, checksum mismatch", n)
	}
	resp, _ = client.Do("GET", "/v1/files/content", url.Values{"path": {path}, "offset": {"1000"}, "length": {"10"}}, nil)
	got, _ := io.ReadAll(resp.Body)
	if !bytes.Equal(got, data[1000:1010]) {
		t.Errorf("range read: %x", got)
	}
}

func sha256Of(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func put(t *testing.T, path string, body io.Reader, q url.Values, out any) int {
	t.Helper()
	if q == nil {
		q = url.Values{}
	}
	q.Set("path", path)
	resp, err := client.Do("PUT", "/v1/files/content", q, body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		b, _ := io.ReadAll(resp.Body)
		_ = jsonUnmarshal(b, out)
	}
	return resp.StatusCode
}

type errBody struct {
	Error struct {
		Code, Message, Path string
	}
}

func TestFileOperationsAndUnicodePaths(t *testing.T) {
	dir := filepath.Join(work, "dir with spaces/ünïcödé 日本")
	var info struct {
		Type string
		Mode uint32
		UID  int
	}
	if st := client.JSON(t, "POST", "/v1/files/mkdir", nil, map[string]any{"path": dir, "parents": true}, &info); st != 200 || info.Type != "dir" || info.UID != uid {
		t.Fatalf("mkdir: %d %+v", st, info)
	}
	f := filepath.Join(dir, "a b.txt")
	put(t, f, strings.NewReader("héllo\x00binary\xff"), url.Values{"mode": {"600"}}, nil)
	client.JSON(t, "GET", "/v1/files/stat", url.Values{"path": {f}}, nil, &info)
	if info.Type != "file" || info.Mode != 0o600 {
		t.Errorf("stat: %+v", info)
	}
	var list struct{ Entries []struct{ Name, Type string } }
	client.JSON(t, "GET", "/v1/files/list", url.Values{"path": {dir}}, nil, &list)
	if len(list.Entries) != 1 || list.Entries[0].Name != "a b.txt" {
		t.Errorf("list: %+v", list)
	}
	moved := filepath.Join(dir, "moved ✓.txt")
	if st := client.JSON(t, "POST", "/v1/files/move", nil, map[string]any{"from": f, "to": moved}, nil); st != 200 {
		t.Errorf("move: %d", st)
	}
	resp, _ := client.Do("GET", "/v1/files/content", url.Values{"path": {moved}}, nil)
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "héllo\x00binary\xff" {
		t.Errorf("content after move: %q", b)
	}
	var e errBody
	if st := client.JSON(t, "POST", "/v1/files/remove", nil, map[string]any{"path": filepath.Join(work, "dir with spaces")}, &e); st != 409 || e.Error.Code != "ENOTEMPTY" {
		t.Errorf("remove non-empty: %d %+v", st, e)
	}
	if st := client.JSON(t, "POST", "/v1/files/remove", nil, map[string]any{"path": filepath.Join(work, "dir with spaces"), "recursive": true}, nil); st != 204 {
		t.Errorf("remove -r: %d", st)
	}
	if st := client.JSON(t, "GET", "/v1/files/stat", url.Values{"path": {moved}}, nil, &e); st != 404 || e.Error.Code != "ENOENT" {
		t.Errorf("stat removed: %d %+v", st, e)
	}
}

func TestPermissionDeniedAndReadOnly(t *testing.T) {
	cases := []struct {
		name, method, path string
		q                  url.Values
		body               any
		status             int
		code               string
	}{
		{"read root-only file", "GET", "/v1/files/content", url.Values{"path": {filepath.Join(filepath.Dir(work), "root-only.txt")}}, nil, 403, "EACCES"},
		{"write into /etc", "PUT", "/v1/files/content", url.Values{"path": {"/etc/sbx-test"}}, nil, 403, "EACCES"},
		{"write into read-only mount", "PUT", "/v1/files/content", url.Values{"path": {filepath.Join(roDir, "new.txt")}}, nil, 403, "EROFS"},
		{"mkdir in read-only mount", "POST", "/v1/files/mkdir", nil, map[string]any{"path": filepath.Join(roDir, "d")}, 403, "EROFS"},
		{"remove from read-only mount", "POST", "/v1/files/remove", nil, map[string]any{"path": filepath.Join(roDir, "existing.txt")}, 403, "EROFS"},
		{"relative path escapes nothing", "GET", "/v1/files/stat", url.Values{"path": {"../../../../../../nonexistent"}}, nil, 404, "ENOENT"},
	}
	for _, c := range cases {
		var e errBody
		var st int
		if c.method == "PUT" {
			st = put(t, c.q.Get("path"), strings.NewReader("x"), nil, &e)
		} else {
			st = client.JSON(t, c.method, c.path, c.q, c.body, &e)
		}
		if st != c.status || e.Error.Code != c.code || e.Error.Message == "" {
			t.Errorf("%s: %d %+v, want %d %s", c.name, st, e, c.status, c.code)
		}
	}
	// Files whose size says nothing (procfs) are read to their end.
	resp, _ := client.Do("GET", "/v1/files/content", url.Values{"path": {"/proc/self/status"}}, nil)
	if b, _ := io.ReadAll(resp.Body); !strings.Contains(string(b), "Uid:\t65534") {
		t.Errorf("procfs read: %q", b)
	}
	// Reading from the read-only mount works.
	resp, _ = client.Do("GET", "/v1/files/content", url.Values{"path": {filepath.Join(roDir, "existing.txt")}}, nil)
	if b, _ := io.ReadAll(resp.Body); string(b) != "read me" {
		t.Errorf("read-only read: %q", b)
	}
}

func TestTarUploadDownload(t *testing.T) {
	src := filepath.Join(work, "tree src")
	os.MkdirAll(filepath.Join(src, "sub dir"), 0o755)
	os.WriteFile(filepath.Join(src, "sub dir", "f ✓.txt"), []byte("one"), 0o644)
	os.WriteFile(filepath.Join(src, "x.bin"), []byte{0, 1, 2, 255}, 0o755)
	exec.Command("chown", "-R", fmt.Sprint(uid), src).Run()
	resp, err := client.Do("GET", "/v1/files/archive", url.Values{"path": {src}}, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("download: %v %v", err, resp.Status)
	}
	archive, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	dst := filepath.Join(work, "tree dst")
	resp, _ = client.Do("PUT", "/v1/files/archive", url.Values{"path": {dst}}, bytes.NewReader(archive))
	var sum struct{ Files, Dirs int }
	b, _ := io.ReadAll(resp.Body)
	jsonUnmarshal(b, &sum)
	if resp.StatusCode != 200 || sum.Files != 2 {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	got, _ := os.ReadFile(filepath.Join(dst, "tree src", "sub dir", "f ✓.txt"))
	fi, _ := os.Stat(filepath.Join(dst, "tree src", "x.bin"))
	if string(got) != "one" || fi == nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("extracted: %q %v", got, fi)
	}
	// An archive that climbs out of the destination is refused.
	evil := tarOf(t, "../escape.txt", "x")
	resp, _ = client.Do("PUT", "/v1/files/archive", url.Values{"path": {dst}}, bytes.NewReader(evil))
	if resp.StatusCode != 400 {
		t.Errorf("escaping archive: %d", resp.StatusCode)
	}
	if _, err := os.Stat(filepath.Join(work, "escape.txt")); err == nil {
		t.Error("escaping entry was written")
	}
}
