#!/usr/bin/env bash
# Builds the test node's storage from the Go module proxy, pinned by this
# directory's go.mod/go.sum:
#   local-path           a local-path provisioner (local-path/, on
#                        sigs.k8s.io/sig-storage-lib-external-provisioner): the
#                        default class, plain node directories, no snapshots
#   csi-hostpath         a CSI driver (csi-hostpath/): node directories as CSI
#                        volumes, snapshots as tar archives, restores from them
#   snapshot-controller, csi-snapshotter
#                        kubernetes-csi/external-snapshotter's, for VolumeSnapshots
#   crds/                the VolumeSnapshot CRDs of external-snapshotter's client module
#
# Upstream's csi-driver-host-path, external-provisioner and node-driver-registrar
# would do what csi-hostpath does; the module proxy here refuses those modules
# (403 "This module version is not available"), so csi-hostpath stands in.
#
# Cached like hack/k8s-bins/node/build.sh under a key of its own
# (storage-bins/<key>, from the Go version and this directory's module), so
# storage changes rebuild neither the node nor the control plane.
# Prints the directory holding the outputs on stdout (everything else on stderr).
#
#   SANDBOX_OPERATOR_CACHE    cache root (default ~/.cache/sandbox-operator)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
outputs=(local-path csi-hostpath snapshot-controller csi-snapshotter crds/snapshot.storage.k8s.io_volumesnapshots.yaml)

key="$( (go env GOVERSION; cat "$here"/go.mod "$here"/go.sum "$here"/*.go "$here"/*/*.go) \
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
snapshotter=github.com/kubernetes-csi/external-snapshotter/v8
build() { # output-name package
  local name="$1" pkg="$2" start=$SECONDS
  [[ -x "$out/$name" ]] && return 0
  echo "storage-bins: building $name ($pkg)" >&2
  (cd "$here" && go build -ldflags "-s -w" -o "$out/.$name.tmp" "$pkg")
  mv "$out/.$name.tmp" "$out/$name"
  echo "storage-bins: $name built in $((SECONDS - start)) s" >&2
}
build local-path ./local-path
build csi-hostpath ./csi-hostpath
build snapshot-controller "$snapshotter/cmd/snapshot-controller"
build csi-snapshotter "$snapshotter/cmd/csi-snapshotter"

crds="$(cd "$here" && go list -m -f '{{.Dir}}' "$snapshotter/client/v8")/config/crd"
mkdir -p "$out/crds"
for kind in volumesnapshotclasses volumesnapshotcontents volumesnapshots; do
  cp "$crds/snapshot.storage.k8s.io_$kind.yaml" "$out/crds/"
done

echo "$out"
