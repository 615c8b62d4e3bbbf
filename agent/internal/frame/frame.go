// Package frame is the framing of the agent's streaming endpoints (POST
// /v1/exec): both directions of one HTTP/1.1 exchange carry a sequence of
// frames, a 1-byte type and a 4-byte big-endian payload length, then the
// payload. Plain HTTP rather than WebSocket: no upgrade, no masking, nothing
// but the standard library on either side, and it passes unchanged through a
// published port or a Kubernetes port-forward (both are raw TCP).
package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Type says what a frame carries. Client-to-agent types are below 0x10,
// agent-to-client types from 0x10 on, so a frame sent the wrong way is an error.
type Type byte

const (
	// Client to agent.
	Spec     Type = 0x00 // JSON ExecRequest; the first frame, exactly once
	Stdin    Type = 0x01 // bytes for the process's stdin
	StdinEOF Type = 0x02 // close the process's stdin (empty payload)
	Resize   Type = 0x03 // JSON {"cols":N,"rows":N}; TTY only
	Signal   Type = 0x04 // JSON {"signal":"SIGTERM"}; sent to the process group

	// Agent to client.
	Started Type = 0x10 // JSON {"id":"...","pid":N}
	Stdout  Type = 0x11 // bytes (with a TTY: the terminal's output, stderr included)
	Stderr  Type = 0x12 // bytes
	Exit    Type = 0x13 // JSON ExitStatus; the last frame
	Error   Type = 0x14 // JSON {"code":"...","message":"..."}; the last frame
)

// MaxPayload bounds one frame: a reader never allocates more than this for one.
const MaxPayload = 1 << 20

// HeaderSize is the fixed part of every frame.
const HeaderSize = 5

// ErrTooLarge is returned for a frame whose announced length exceeds MaxPayload.
var ErrTooLarge = errors.New("frame: payload larger than 1 MiB")

// Write writes one frame.
func Write(w io.Writer, t Type, payload []byte) error {
	if len(payload) > MaxPayload {
		return ErrTooLarge
	}
	buf := make([]byte, HeaderSize+len(payload))
	buf[0] = byte(t)
	binary.BigEndian.PutUint32(buf[1:HeaderSize], uint32(len(payload)))
	copy(buf[HeaderSize:], payload)
	_, err := w.Write(buf)
	return err
}

// Reader reads frames, reusing one buffer: a payload is valid until the next Read.
type Reader struct {
	r   io.Reader
	hdr [HeaderSize]byte
	buf []byte
}

func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

// Read returns the next frame; io.EOF only at a frame boundary.
func (fr *Reader) Read() (Type, []byte, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, fmt.Errorf("frame: truncated header: %w", err)
		}
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(fr.hdr[1:])
	if n > MaxPayload {
		return 0, nil, ErrTooLarge
	}
	if cap(fr.buf) < int(n) {
		fr.buf = make([]byte, n)
	}
	p := fr.buf[:n]
	if _, err := io.ReadFull(fr.r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, fmt.Errorf("frame: truncated payload: %w", err)
	}
	return Type(fr.hdr[0]), p, nil
}
