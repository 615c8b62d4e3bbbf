#!/usr/bin/env bash
# Builds the test node's own binaries from the Go module proxy, through the
# wrapper modules beside this script: kubelet and kube-proxy (node/kube, the same
# Kubernetes release as the control plane), kube-router (node/kube-router, the
# NetworkPolicy enforcer, run in firewall-only mode), and a static pause binary
# with its image (node/pause; no registry here to pull registry.k8s.io/pause).
#
# Cached like ../build.sh, but under a key of its own (node-bins/<key>, from the
# Go version and these modules), so node changes never rebuild the control plane
# and control-plane changes never rebuild the node. The node's modules live one
# level deeper than the control plane's, outside the `*/go.mod` glob of its key.
#
# Prints the directory holding the binaries on stdout (everything else on stderr).
#
#   SANDBOX_OPERATOR_CACHE    cache root (default ~/.cache/sandbox-operator)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Keep in step with test/support/node/binaries.ts.
pause_image="localhost/sandbox-operator/pause:1"
outputs=(kubelet kube-proxy kube-router pause pause.tar)

key="$( (go env GOVERSION; cat "$here"/*/go.mod "$here"/*/go.sum "$here"/pause/*.go \
  "$here"/pause/mkimage/*.go; echo "$pause_image") | sha256sum | cut -c1-16)"
cache_root="${SANDBOX_OPERATOR_CACHE:-$HOME/.cache/sandbox-operator}"
out="$cache_root/node-bins/$key"

has_all() {
  local o
  for o in "${outputs[@]}"; do [[ -s "$out/$o" ]] || return 1; done
}
if has_all; then
  echo "$out"
  exit 0
fi

mkdir -p "$out"
# One build of a key at a time (make -j, two test runs starting together).
exec 9>"$out/.lock"
flock 9
if has_all; then
  echo "$out"
  exit 0
fi

export CGO_ENABLED=0 GOFLAGS=-trimpath
kube_version="$(cd "$here/kube" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
minor="$(echo "$kube_version" | cut -d. -f2)"
kube_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$kube_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
router_version="$(cd "$here/kube-router" && go list -m -f '{{.Version}}' github.com/cloudnativelabs/kube-router/v2)"
router_ldflags="-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$router_version"

build() { # module-dir output-name package [ldflags]
  local mod="$1" name="$2" pkg="$3" ldflags="${4:--s -w}" start=$SECONDS
  [[ -x "$out/$name" ]] && return 0
  echo "node-bins: building $name ($pkg)" >&2
  (cd "$here/$mod" && go build -ldflags "$ldflags" -o "$out/.$name.tmp" "$pkg")
  mv "$out/.$name.tmp" "$out/$name"
  echo "node-bins: $name built in $((SECONDS - start)) s" >&2
}

build pause pause .
build kube kubelet k8s.io/kubernetes/cmd/kubelet "$kube_ldflags"
build kube kube-proxy k8s.io/kubernetes/cmd/kube-proxy "$kube_ldflags"
build kube-router kube-router github.com/cloudnativelabs/kube-router/v2/cmd/kube-router "$router_ldflags"
if [[ ! -s "$out/pause.tar" ]]; then
  (cd "$here/pause" && go run ./mkimage -binary "$out/pause" -path /pause \
    -name "$pause_image" -user 65535:65535 -out "$out/pause.tar")
fi

echo "$out"
