// mkimage writes a one-layer image holding a single static binary as a
// docker-archive tarball (the format `docker save` writes and `ctr images import`
// reads), without a Docker engine or a registry. The output is reproducible: the
// same binary gives the same image ID.
//
//	mkimage -binary pause -path /pause -name example.local/pause:1 -user 65535:65535 -out pause.tar
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

func main() {
	binary := flag.String("binary", "", "static binary to put in the image")
	path := flag.String("path", "/pause", "its path inside the image (the entrypoint)")
	name := flag.String("name", "", "image reference to tag")
	user := flag.String("user", "65535:65535", "user the entrypoint runs as")
	out := flag.String("out", "", "docker-archive tarball to write")
	flag.Parse()
	if *binary == "" || *name == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*binary, *path, *name, *user, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(binary, path, name, user, out string) error {
	content, err := os.ReadFile(binary)
	if err != nil {
		return err
	}
	epoch := time.Unix(0, 0).UTC()
	layer, err := tarball(epoch, entry{strings.TrimPrefix(path, "/"), 0o755, content})
	if err != nil {
		return err
	}
	diffID := digest(layer)
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      epoch.Format(time.RFC3339),
		"config":       map[string]any{"Entrypoint": []string{path}, "User": user},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + diffID}},
	})
	if err != nil {
		return err
	}
	configName := digest(config) + ".json"
	layerName := diffID + "/layer.tar"
	manifest, err := json.Marshal([]map[string]any{
		{"Config": configName, "RepoTags": []string{name}, "Layers": []string{layerName}},
	})
	if err != nil {
		return err
	}
	archive, err := tarball(epoch,
		entry{configName, 0o644, config},
		entry{layerName, 0o644, layer},
		entry{"manifest.json", 0o644, manifest},
	)
	if err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, archive, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

type entry struct {
	name string
	mode int64
	body []byte
}

func tarball(mtime time.Time, entries ...entry) ([]byte, error) {
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.body)), ModTime: mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := w.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := w.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
