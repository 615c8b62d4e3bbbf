#!/usr/bin/env bash
# Builds the test node's storage: the local-path provisioner (local-path/, on
# sigs.k8s.io/sig-storage-lib-external-provisioner, pinned in its go.mod/go.sum)
# from the Go module proxy. Cached like hack/k8s-bins/node/build.sh under a key of
# its own (storage-bins/<key>, from the Go version and this module), so storage
# changes rebuild neither the node nor the control plane.
#
# CSI hostpath (csi-driver-host-path, external-provisioner, node-driver-registrar)
# was the first choice, for VolumeSnapshots; the module proxy here refuses those
# modules (403 "This module version is not available"), so there is no CSI driver
# and no snapshotting class on the test node (see docs/workspaces.md).
#
# Prints the directory holding the binaries on stdout (everything else on stderr).
#
#   SANDBOX_OPERATOR_CACHE    cache root (default ~/.cache/sandbox-operator)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
outputs=(local-path)

key="$( (go env GOVERSION; cat "$here"/local-path/go.mod "$here"/local-path/go.sum "$here"/local-path/*.go) \
  | sha256sum | cut -c1-16)"
cache_root="${SANDBOX_OPERATOR_CACHE:-$HOME/.cache/sandbox-operator}"
out="$cache_root/storage-bins/$key"

has_all() {
  local o
  for o in "${outputs[@]}"; do [[ -s "$out/$o" ]] || return 1; done
}
if has_all; then
  echo "$out"
  exit 0
fi

mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if has_all; then
  echo "$out"
  exit 0
fi

export CGO_ENABLED=0 GOFLAGS=-trimpath
start=$SECONDS
echo "storage-bins: building local-path" >&2
(cd "$here/local-path" && go build -ldflags "-s -w" -o "$out/.local-path.tmp" .)
mv "$out/.local-path.tmp" "$out/local-path"
echo "storage-bins: local-path built in $((SECONDS - start)) s" >&2

echo "$out"
