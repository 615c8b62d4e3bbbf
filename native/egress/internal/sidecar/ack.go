package sidecar

// The policy file's acknowledgement (docker backend, local daemon): after
// every load of the policy file the sidecar records which bytes it put in
// force, so the controller reports a sandbox Ready only once its current
// policy is enforced (src/backends/docker/policy-acks.ts reads it).
//
// The record goes into one file of the Docker host, bind-mounted read-write
// into the sidecar container alone. The workload shares the sidecar's network
// namespace, not its mount namespace, so it neither sees nor writes it; and
// the controller learns of a write from an inotify watch on the host
// directory holding every sandbox's file (one watch for all of them).
//
// The file is opened once, before the sidecar drops root: the controller
// makes it owned by root, mode 0600, and the sidecar's UID (1337, no
// capabilities) could not open it later. It is rewritten in place, not
// renamed over (a bind-mounted file cannot be replaced from inside): a reader
// racing a write may see a torn record, which does not parse or names another
// digest, and reads again on the write's own inotify event.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sync"
)

// AckRecord is the file's content: one JSON object and a newline.
type AckRecord struct {
	// SHA256 is the hex sha256 of the exact policy file bytes read ("" when the file could not be read).
	SHA256 string `json:"sha256"`
	// Applied: the policy is in force. False: the sidecar refused it and denies all egress (Error says why).
	Applied bool   `json:"applied"`
	Error   string `json:"error,omitempty"`
}

// PolicyAck writes the records; nil writes nothing (no acknowledgement asked for).
type PolicyAck struct {
	mu sync.Mutex
	f  *os.File
}

// OpenPolicyAck opens the acknowledgement file for writing (created if absent).
func OpenPolicyAck(path string) (*PolicyAck, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the policy acknowledgement file: %w", err)
	}
	return &PolicyAck{f: f}, nil
}

// PolicyDigest is the policy's identity in the acknowledgement: the sha256 of the file's bytes.
func PolicyDigest(text []byte) string {
	sum := sha256.Sum256(text)
	return hex.EncodeToString(sum[:])
}

// Applied records that the policy read as `text` is in force.
func (a *PolicyAck) Applied(text []byte) error {
	return a.write(AckRecord{SHA256: PolicyDigest(text), Applied: true})
}

// Refused records that the policy read as `text` (nil: unreadable) is not in force, and why.
func (a *PolicyAck) Refused(text []byte, why string) error {
	r := AckRecord{Error: why}
	if text != nil {
		r.SHA256 = PolicyDigest(text)
	}
	return a.write(r)
}

func (a *PolicyAck) write(r AckRecord) error {
	if a == nil {
		return nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	a.mu.Lock()
	defer a.mu.Unlock()
	// Written over the old record, then cut to length: each step is one
	// inotify event, and the reader keeps whichever read parses last.
	if _, err := a.f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("writing the policy acknowledgement: %w", err)
	}
	if err := a.f.Truncate(int64(len(b))); err != nil {
		return fmt.Errorf("writing the policy acknowledgement: %w", err)
	}
	return nil
}

// Close releases the file.
func (a *PolicyAck) Close() {
	if a != nil {
		a.f.Close()
	}
}
