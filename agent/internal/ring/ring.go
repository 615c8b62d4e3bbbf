// Package ring keeps the last N bytes of a background process's output, so a
// client can read it later (or poll it) while memory stays bounded however
// much the process writes. Offsets are absolute (bytes written since start),
// which lets a poller resume exactly where it stopped and see what was dropped.
package ring

import "sync"

type Buffer struct {
	mu      sync.Mutex
	buf     []byte
	size    int
	written int64 // total bytes ever written
	changed chan struct{}
}

// New returns a buffer keeping the last size bytes (size > 0). Memory is
// allocated as output arrives, up to size.
func New(size int) *Buffer {
	return &Buffer{size: size, changed: make(chan struct{})}
}

// Write never fails and never blocks the writer on a reader.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	if n >= b.size {
		p = p[n-b.size:]
	}
	if len(b.buf) < b.size {
		grow := min(b.size, max(len(b.buf)+len(p), 2*len(b.buf), 4096))
		nb := make([]byte, grow)
		// Re-layout linearly: position of byte k is k % len(buf).
		b.copyOut(nb, b.start(), b.written)
		b.buf = nb
	}
	// Bytes that would be overwritten in this same write are skipped.
	b.written += int64(n - len(p))
	for len(p) > 0 {
		at := int(b.written % int64(len(b.buf)))
		c := copy(b.buf[at:], p)
		p = p[c:]
		b.written += int64(c)
	}
	close(b.changed)
	b.changed = make(chan struct{})
	return n, nil
}

func (b *Buffer) start() int64 {
	return max(0, b.written-int64(len(b.buf)))
}

// copyOut copies bytes [from, to) into dst laid out by absolute offset modulo len(dst).
func (b *Buffer) copyOut(dst []byte, from, to int64) {
	for k := from; k < to; {
		src := int(k % int64(len(b.buf)))
		run := min(int64(len(b.buf)-src), to-k)
		d := int(k % int64(len(dst)))
		run = min(run, int64(len(dst)-d))
		copy(dst[d:d+int(run)], b.buf[src:src+int(run)])
		k += run
	}
}

// ReadFrom returns the bytes kept from absolute offset off on, the offset the
// returned data actually starts at (greater than off when older bytes were
// dropped) and the end offset to pass next time.
func (b *Buffer) ReadFrom(off int64) (data []byte, start, end int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	start = max(off, b.start())
	end = b.written
	if start >= end {
		return nil, min(start, end), end
	}
	data = make([]byte, end-start)
	for k := start; k < end; {
		src := int(k % int64(len(b.buf)))
		run := min(int64(len(b.buf)-src), end-k)
		copy(data[k-start:], b.buf[src:src+int(run)])
		k += run
	}
	return data, start, end
}

// Written is the total number of bytes ever written.
func (b *Buffer) Written() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.written
}

// Changed returns a channel closed at the next write.
func (b *Buffer) Changed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.changed
}
