#!/usr/bin/env bash
# Builds the test node's storage from the Go module proxy, each part pinned by
# its own module (go.mod/go.sum) and cached under a key of its own
# (storage-bins/<key>, from the Go version and that module), like
# hack/k8s-bins/node/build.sh: storage changes rebuild neither the node nor
# the control plane, and the CSI part never rebuilds the local one.
#
#   build.sh local   local-path/: a local-path provisioner on
#                    sigs.k8s.io/sig-storage-lib-external-provisioner; the
#                    default class, plain node directories, no snapshots.
#   build.sh csi     csi/: csi-hostpath (csi/csi-hostpath: a CSI driver keeping
#                    volumes as node directories and snapshots as tar archives),
#                    kubernetes-csi/external-snapshotter's snapshot-controller and
#                    csi-snapshotter, and the VolumeSnapshot CRDs (crds/) of its
#                    client module.
#
# Upstream's csi-driver-host-path, external-provisioner and node-driver-registrar
# would do what csi-hostpath does; the module proxy here refuses those modules
# (403 "This module version is not available"), so csi-hostpath stands in.
#
# Prints the directory holding the outputs on stdout (everything else on stderr).
#   SANDBOX_OPERATOR_CACHE    cache root (default ~/.cache/sandbox-operator)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
what="${1:-}"
case "$what" in
  local)
    mod="$here/local-path"
    outputs=(local-path)
    ;;
  csi)
    mod="$here/csi"
    outputs=(csi-hostpath snapshot-controller csi-snapshotter crds/snapshot.storage.k8s.io_volumesnapshots.yaml)
    ;;
  *)
    echo "usage: $0 local|csi" >&2
    exit 2
    ;;
esac

if [[ "$what" == local ]]; then
  key_files=("$mod"/go.mod "$mod"/go.sum "$mod"/*.go)
else
  key_files=("$mod"/go.mod "$mod"/go.sum "$mod"/*.go "$mod"/*/*.go)
fi
key="$( (go env GOVERSION; cat "${key_files[@]}") | sha256sum | cut -c1-16)"
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
build() { # output-name package
  local name="$1" pkg="$2" start=$SECONDS
  [[ -x "$out/$name" ]] && return 0
  echo "storage-bins: building $name ($pkg)" >&2
  (cd "$mod" && go build -ldflags "-s -w" -o "$out/.$name.tmp" "$pkg")
  mv "$out/.$name.tmp" "$out/$name"
  echo "storage-bins: $name built in $((SECONDS - start)) s" >&2
}

if [[ "$what" == local ]]; then
  build local-path .
else
  snapshotter=github.com/kubernetes-csi/external-snapshotter/v8
  build csi-hostpath ./csi-hostpath
  build snapshot-controller "$snapshotter/cmd/snapshot-controller"
  build csi-snapshotter "$snapshotter/cmd/csi-snapshotter"
  # The CRDs ship in the client module (github.com/kubernetes-csi/external-snapshotter/client/v8),
  # a module of its own: not a directory of the v8 module.
  crds="$(cd "$mod" && go list -m -f '{{.Dir}}' github.com/kubernetes-csi/external-snapshotter/client/v8)/config/crd"
  mkdir -p "$out/crds"
  for kind in volumesnapshotclasses volumesnapshotcontents volumesnapshots; do
    cp "$crds/snapshot.storage.k8s.io_$kind.yaml" "$out/crds/"
  done
fi

echo "$out"
