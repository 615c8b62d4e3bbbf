package files

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"sandboxing.dev/sandbox-agent/internal/apierr"
)

// TarTo writes path (a directory, recursively, or a single file) to w as a tar
// stream whose names are relative to path's parent: downloading /w/out gives
// out/..., like `docker cp` and `kubectl cp`.
func TarTo(w io.Writer, path string) error {
	root, err := os.Lstat(path)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	parent := filepath.Dir(path)
	add := func(p string, fi fs.FileInfo) error {
		rel, err := filepath.Rel(parent, p)
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return nil // sockets and the like: nothing to carry
		}
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		// The header promised hdr.Size bytes: a file that shrank meanwhile is padded, one that grew is cut.
		n, err := io.Copy(tw, io.LimitReader(f, hdr.Size))
		if err == nil && n < hdr.Size {
			_, err = io.CopyN(tw, zeroReader{}, hdr.Size-n)
		}
		return err
	}
	if !root.IsDir() {
		if err := add(path, root); err != nil {
			return err
		}
		return tw.Close()
	}
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return add(p, fi)
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// UntarSummary is what an upload created.
type UntarSummary struct {
	Files int   `json:"files"`
	Dirs  int   `json:"dirs"`
	Bytes int64 `json:"bytes"`
}

// UntarFrom extracts a tar stream into dir (created if missing). Entries must
// stay inside dir: an absolute name or one climbing out with ".." is refused,
// and so is a write through a symlink the archive itself placed. Ownership is
// not restored (the agent has no CAP_CHOWN); permission bits are.
func UntarFrom(r io.Reader, dir string) (UntarSummary, error) {
	var sum UntarSummary
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sum, err
	}
	tr := tar.NewReader(r)
	links := map[string]bool{} // symlinks this archive created
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return sum, nil
		}
		if err != nil {
			return sum, apierr.New(http.StatusBadRequest, apierr.BadRequest, "archive: "+err.Error())
		}
		name := filepath.Clean(filepath.FromSlash(hdr.Name))
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return sum, apierr.New(http.StatusBadRequest, apierr.BadRequest, fmt.Sprintf("archive: entry %q leaves the destination", hdr.Name))
		}
		if name == "." {
			continue
		}
		for p := filepath.Dir(name); p != "."; p = filepath.Dir(p) {
			if links[p] {
				return sum, apierr.New(http.StatusBadRequest, apierr.BadRequest, fmt.Sprintf("archive: entry %q goes through a symlink in the archive", hdr.Name))
			}
		}
		target := filepath.Join(dir, name)
		mode := os.FileMode(hdr.Mode).Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, max(mode, 0o700)); err != nil {
				return sum, err
			}
			sum.Dirs++
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return sum, err
			}
			f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
			if err != nil {
				return sum, err
			}
			n, err := io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return sum, err
			}
			_ = os.Chmod(target, mode)
			sum.Files++
			sum.Bytes += n
		case tar.TypeSymlink:
			_ = os.Remove(target)
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return sum, err
			}
			links[name] = true
		default:
			// Hard links, devices, FIFOs: not something a sandbox user uploads.
			return sum, &fs.PathError{Op: "untar", Path: hdr.Name, Err: syscall.EINVAL}
		}
	}
}
