// Package agenttest is a minimal Go client of the agent's protocol, for the
// agent's own tests (the real client is TypeScript, in src/dataplane).
package agenttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"

	"sandboxing.dev/sandbox-agent/internal/frame"
)

type Client struct {
	Base  string
	Token string
	HTTP  *http.Client
}

func New(base, token string) *Client {
	return &Client{Base: base, Token: token, HTTP: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}}}
}

func (c *Client) Do(method, path string, query url.Values, body io.Reader) (*http.Response, error) {
	u := c.Base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return nil, err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	return c.HTTP.Do(req)
}

// JSON does a request with a JSON body (nil: none) and decodes a JSON answer into out.
func (c *Client) JSON(t testing.TB, method, path string, query url.Values, in, out any) int {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	resp, err := c.Do(method, path, query, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decoding %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

// Result of a foreground exec.
type Result struct {
	Status   int // HTTP status of the exec call
	Error    map[string]any
	ID       string
	Stdout   []byte
	Stderr   []byte
	ExitCode *int
	Signal   string
	TimedOut bool
	// Frames counts the stdout/stderr frames seen.
	Frames int
}

// ExecOptions: Stdin is sent then closed; OnStdout, if set, receives stdout
// instead of buffering it (a test of large output counts bytes there).
type ExecOptions struct {
	Stdin    io.Reader
	OnStdout func([]byte)
	Extra    [][2]any // additional frames (type, JSON value) sent after the spec
}

// Exec runs spec through POST /v1/exec.
func (c *Client) Exec(spec map[string]any, o ExecOptions) (*Result, error) {
	pr, pw := io.Pipe()
	if o.Stdin != nil {
		spec["stdin"] = true
	}
	go func() {
		b, _ := json.Marshal(spec)
		if err := frame.Write(pw, frame.Spec, b); err != nil {
			return
		}
		for _, f := range o.Extra {
			b, _ := json.Marshal(f[1])
			frame.Write(pw, f[0].(frame.Type), b)
		}
		if o.Stdin != nil {
			buf := make([]byte, 64<<10)
			for {
				n, err := o.Stdin.Read(buf)
				if n > 0 {
					if frame.Write(pw, frame.Stdin, buf[:n]) != nil {
						return
					}
				}
				if err != nil {
					break
				}
			}
			frame.Write(pw, frame.StdinEOF, nil)
		}
		pw.Close()
	}()
	resp, err := c.Do("POST", "/v1/exec", nil, pr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	res := &Result{Status: resp.StatusCode}
	if resp.StatusCode != 200 {
		var e struct {
			Error map[string]any `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&e)
		res.Error = e.Error
		return res, nil
	}
	fr := frame.NewReader(resp.Body)
	for {
		t, p, err := fr.Read()
		if err != nil {
			return res, fmt.Errorf("stream ended without an exit frame: %w", err)
		}
		switch t {
		case frame.Started:
			var s struct{ ID string }
			json.Unmarshal(p, &s)
			res.ID = s.ID
		case frame.Stdout:
			res.Frames++
			if o.OnStdout != nil {
				o.OnStdout(p)
			} else {
				res.Stdout = append(res.Stdout, p...)
			}
		case frame.Stderr:
			res.Frames++
			res.Stderr = append(res.Stderr, p...)
		case frame.Exit:
			var e struct {
				ExitCode *int   `json:"exitCode"`
				Signal   string `json:"signal"`
				TimedOut bool   `json:"timedOut"`
			}
			json.Unmarshal(p, &e)
			res.ExitCode, res.Signal, res.TimedOut = e.ExitCode, e.Signal, e.TimedOut
			return res, nil
		case frame.Error:
			return res, fmt.Errorf("error frame: %s", p)
		}
	}
}
