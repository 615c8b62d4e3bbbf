// Package files is the agent's file API. It adds no confinement of its own:
// the agent runs as the workload's user without capabilities, so the kernel
// decides what may be touched, and its refusals (EACCES, EROFS, ...) reach the
// client by name. What this package does check is the shape of a request.
package files

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"sandboxing.dev/sandbox-agent/internal/apierr"
)

// Info describes one file system entry (from lstat: a symlink is reported as such).
type Info struct {
	Path    string    `json:"path"`
	Name    string    `json:"name"`
	Type    string    `json:"type"` // file | dir | symlink | other
	Size    int64     `json:"size"`
	Mode    uint32    `json:"mode"` // permission bits (and setuid/setgid/sticky)
	ModTime time.Time `json:"modTime"`
	UID     uint32    `json:"uid"`
	GID     uint32    `json:"gid"`
	Target  string    `json:"target,omitempty"` // a symlink's target
}

// Resolve makes p absolute against base (the agent's working directory) and clean.
func Resolve(base, p string) (string, error) {
	if p == "" {
		return "", apierr.New(http.StatusBadRequest, apierr.BadRequest, "path: required")
	}
	for _, c := range p {
		if c == 0 {
			return "", apierr.New(http.StatusBadRequest, apierr.BadRequest, "path: contains a NUL byte")
		}
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(base, p)
	}
	return filepath.Clean(p), nil
}

func infoOf(path string, fi fs.FileInfo) Info {
	in := Info{Path: path, Name: fi.Name(), Size: fi.Size(), ModTime: fi.ModTime().UTC(),
		Mode: uint32(fi.Mode().Perm())}
	if fi.Mode()&fs.ModeSetuid != 0 {
		in.Mode |= 0o4000
	}
	if fi.Mode()&fs.ModeSetgid != 0 {
		in.Mode |= 0o2000
	}
	if fi.Mode()&fs.ModeSticky != 0 {
		in.Mode |= 0o1000
	}
	switch {
	case fi.Mode().IsRegular():
		in.Type = "file"
	case fi.IsDir():
		in.Type = "dir"
	case fi.Mode()&fs.ModeSymlink != 0:
		in.Type = "symlink"
		in.Target, _ = os.Readlink(path)
	default:
		in.Type = "other"
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		in.UID, in.GID = st.Uid, st.Gid
	}
	return in
}

func Stat(path string) (Info, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return Info{}, err
	}
	return infoOf(path, fi), nil
}

// List returns a directory's entries (lstat each; one that vanished meanwhile is skipped).
func List(path string) ([]Info, error) {
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(ents))
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, infoOf(filepath.Join(path, e.Name()), fi))
	}
	return out, nil
}

// Open opens a regular file for reading from offset; length < 0 means to the end.
func Open(path string, offset, length int64) (io.ReadCloser, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if fi.IsDir() {
		f.Close()
		return nil, 0, &fs.PathError{Op: "read", Path: path, Err: syscall.EISDIR}
	}
	if offset < 0 {
		f.Close()
		return nil, 0, apierr.New(http.StatusBadRequest, apierr.BadRequest, "offset: must not be negative")
	}
	size := fi.Size()
	if !fi.Mode().IsRegular() || size == 0 {
		// A FIFO or device, or a file whose size says nothing (procfs and
		// sysfs report 0): stream what it gives.
		size = -1
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, 0, err
		}
	}
	n := int64(-1)
	if size >= 0 {
		n = max(0, size-offset)
		if length >= 0 {
			n = min(n, length)
		}
	} else if length >= 0 {
		n = length
	}
	if n >= 0 {
		return struct {
			io.Reader
			io.Closer
		}{io.LimitReader(f, n), f}, n, nil
	}
	return f, -1, nil
}

// WriteOptions of Write.
type WriteOptions struct {
	Mode    os.FileMode
	Parents bool // create missing parent directories (0755)
	Append  bool
}

// Write streams r into path (created or truncated) and returns the bytes written.
func Write(path string, r io.Reader, o WriteOptions) (int64, error) {
	if o.Parents {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return 0, err
		}
	}
	flags := os.O_WRONLY | os.O_CREATE
	if o.Append {
		flags |= os.O_APPEND
	} else {
		flags |= os.O_TRUNC
	}
	mode := o.Mode
	if mode == 0 {
		mode = 0o644
	}
	f, err := os.OpenFile(path, flags, mode)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 256<<10)
	n, err := io.CopyBuffer(f, r, buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

func Mkdir(path string, parents bool, mode os.FileMode) error {
	if mode == 0 {
		mode = 0o755
	}
	if parents {
		return os.MkdirAll(path, mode)
	}
	return os.Mkdir(path, mode)
}

// Move renames from to to; without overwrite an existing destination is EEXIST.
func Move(from, to string, overwrite bool) error {
	if !overwrite {
		if _, err := os.Lstat(to); err == nil {
			return &fs.PathError{Op: "move", Path: to, Err: syscall.EEXIST}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return os.Rename(from, to)
}

// Remove deletes path; a non-empty directory only with recursive.
func Remove(path string, recursive bool) error {
	if _, err := os.Lstat(path); err != nil {
		return err
	}
	if recursive {
		return os.RemoveAll(path)
	}
	return os.Remove(path)
}

// ParseMode reads an octal permission string ("" = default).
func ParseMode(s string) (os.FileMode, error) {
	if s == "" {
		return 0, nil
	}
	var m uint32
	if _, err := fmt.Sscanf(s, "%o", &m); err != nil || m > 0o7777 {
		return 0, apierr.New(http.StatusBadRequest, apierr.BadRequest, fmt.Sprintf("mode: not an octal permission: %q", s))
	}
	return os.FileMode(m), nil
}
