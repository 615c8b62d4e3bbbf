package sidecar

// The live policy channel (src/egress/README.md, "The channel"): the sidecar
// holds a watch on the controller's policy endpoint, swaps its decision
// tables on every message, and acknowledges the policy it applied, so the
// controller reports EgressReady only for a policy in force.
//
// Failure modes, all closed: until the first message the sidecar keeps its
// start-up policy (the Pod's file: deny-all for a pooled sandbox); when the
// controller is unreachable it keeps the last policy it was sent and redials
// with backoff; a message that does not compile denies everything (like an
// unusable file) and is not acknowledged.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"sandboxing.dev/sandbox-egress/internal/policy"
)

// ChannelOptions say where the endpoint is and how the sidecar proves who it is.
type ChannelOptions struct {
	URL       string // https://IP:PORT
	TokenFile string // the projected ServiceAccount token (re-read on every dial: the kubelet rotates it)
	CAFile    string // PEM of the CA that signed the endpoint's certificate (re-read on every dial)
	// ServerName, when set, is the name the endpoint's certificate must carry
	// (its Service's DNS name): the URL stays an IP (the lockdown's rule names
	// it), so a ClusterIP assigned after the certificate was made still works.
	ServerName string
	// Heartbeat: a stream silent this long is dead (the endpoint writes an empty line every 10 s).
	Silence time.Duration
}

// channelMessage is one line of the watch stream.
type channelMessage struct {
	Generation int64           `json:"generation"`
	Hash       string          `json:"hash"`
	Policy     json.RawMessage `json:"policy"`
}

type policyChannel struct {
	o      ChannelOptions
	log    *slog.Logger
	file   *PolicyFile
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	// applied is the last policy put in force from the channel (for /metrics and tests).
	applied channelMessage
}

// startChannel follows the endpoint until Close; the policy file stays the
// start-up policy only.
func startChannel(o ChannelOptions, file *PolicyFile, log *slog.Logger) *policyChannel {
	if o.Silence == 0 {
		o.Silence = 35 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &policyChannel{o: o, log: log.With("policyUrl", o.URL), file: file, cancel: cancel, done: make(chan struct{})}
	go c.run(ctx)
	return c
}

func (c *policyChannel) Close() {
	c.cancel()
	<-c.done
}

func (c *policyChannel) run(ctx context.Context) {
	defer close(c.done)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		delivered, err := c.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if delivered {
			backoff = 100 * time.Millisecond
		}
		c.log.Warn("policy channel interrupted; keeping the policy in force and redialing", "err", errString(err), "retryInMs", backoff.Milliseconds())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 3*time.Second)
	}
}

func errString(err error) string {
	if err == nil {
		return "stream ended"
	}
	return err.Error()
}

// client is built per dial from the files as they are now.
func (c *policyChannel) client() (*http.Client, string, error) {
	token, err := os.ReadFile(c.o.TokenFile)
	if err != nil {
		return nil, "", fmt.Errorf("reading the token: %w", err)
	}
	pem, err := os.ReadFile(c.o.CAFile)
	if err != nil {
		return nil, "", fmt.Errorf("reading the CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, "", errors.New("the CA file holds no certificate")
	}
	tr := &http.Transport{
		TLSClientConfig:       &tls.Config{RootCAs: roots, ServerName: c.o.ServerName, MinVersion: tls.VersionTLS13},
		DialContext:           (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 5 * time.Second,
		Proxy:                 nil, // never through a proxy: the endpoint is dialed directly, as UID 1337
		// HTTP/2 when the endpoint offers it: an acknowledgement is one more
		// stream on the watch's connection instead of a new TCP and TLS
		// handshake (the largest part of a warm claim's time on a loaded node).
		ForceAttemptHTTP2: true,
	}
	return &http.Client{Transport: tr}, strings.TrimSpace(string(token)), nil
}

// session is one watch: it returns whether a policy was delivered in it.
func (c *policyChannel) session(ctx context.Context) (bool, error) {
	client, token, err := c.client()
	if err != nil {
		return false, err
	}
	defer client.CloseIdleConnections()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, _ := http.NewRequestWithContext(sctx, http.MethodGet, c.o.URL+"/v1/policy?watch=1", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return false, fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	c.log.Info("policy channel connected")
	// A stream silent past the heartbeat is dead: end it and redial.
	watchdog := time.AfterFunc(c.o.Silence, cancel)
	defer watchdog.Stop()
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	delivered := false
	for {
		line, err := r.ReadBytes('\n')
		watchdog.Reset(c.o.Silence)
		if len(bytes.TrimSpace(line)) > 0 {
			if c.apply(ctx, client, token, line) {
				delivered = true
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return delivered, nil
			}
			return delivered, err
		}
	}
}

// apply puts one message's policy in force and acknowledges it.
func (c *policyChannel) apply(ctx context.Context, client *http.Client, token string, line []byte) bool {
	var m channelMessage
	if err := json.Unmarshal(line, &m); err != nil || m.Hash == "" || len(m.Policy) == 0 {
		c.log.Error("policy channel sent an unreadable message; ignored", "err", errString(err))
		return false
	}
	p, err := policy.FromText(m.Policy)
	if err != nil {
		// The CRD validated it; a policy this program cannot compile closes egress.
		c.file.channelFail(fmt.Sprintf("invalid policy from the channel (generation %d): %v", m.Generation, err))
		return false
	}
	c.file.channelApply(p)
	c.mu.Lock()
	c.applied = m
	c.mu.Unlock()
	c.log.Info("egress policy applied from the channel", "generation", m.Generation, "hash", m.Hash, "rules", len(p.Rules), "defaultAction", p.DefaultAction)
	go c.ack(ctx, client, token, m)
	return true
}

// ack tells the endpoint the policy is in force; retried briefly (the
// message is resent on the next connection anyway, and acknowledged then).
func (c *policyChannel) ack(ctx context.Context, client *http.Client, token string, m channelMessage) {
	body, _ := json.Marshal(map[string]any{"generation": m.Generation, "hash": m.Hash})
	for attempt := 0; attempt < 5 && ctx.Err() == nil; attempt++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.o.URL+"/v1/policy/applied", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusOK:
				return
			case resp.StatusCode == http.StatusConflict:
				return // a newer policy is on its way; it is acknowledged instead
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		c.log.Warn("policy acknowledgement failed", "generation", m.Generation, "err", err.Error())
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
		}
	}
}

// channelApply puts a policy from the channel in force; from then on the
// file (which the kubelet rewrites later, possibly with an older policy) is
// no longer followed.
func (f *PolicyFile) channelApply(p *policy.Policy) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.channelOwned.Store(true)
	f.current.Store(p)
	f.problem.Store(nil)
}

func (f *PolicyFile) channelFail(why string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.channelOwned.Store(true)
	f.fail(why)
}

// ParseEndpoint reads the controller's HOST:PORT (an IP: the firewall names it).
func ParseEndpoint(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("must be IP:PORT: %w", err)
	}
	return ap, nil
}

// forbidden: the proxies never dial the controller's policy endpoint for the
// workload, whatever the policy says (an address rule opening the cluster's
// range would otherwise hand the workload a path to it).
func forbidden(controller netip.AddrPort, address string, port int) bool {
	if !controller.IsValid() || port != int(controller.Port()) {
		return false
	}
	a, err := netip.ParseAddr(address)
	return err == nil && a.Unmap() == controller.Addr().Unmap()
}
