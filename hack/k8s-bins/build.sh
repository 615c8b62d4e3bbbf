#!/usr/bin/env bash
# Builds the real control-plane binaries the tests run against (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, kwok, helm) from the Go module proxy, through the
# wrapper modules beside this script. The result is cached outside the checkout,
# keyed by the wrapper modules and the Go version, so a warm machine skips the build.
#
# Prints the directory holding the binaries on stdout (everything else goes to stderr).
#
#   KUBEBUILDER_ASSETS=/dir   use binaries already there when all are present
#   SANDBOX_OPERATOR_CACHE    cache root (default ~/.cache/sandbox-operator)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm)

has_all() {
  local dir="$1" b
  for b in "${bins[@]}"; do [[ -x "$dir/$b" ]] || return 1; done
}

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]] && has_all "$KUBEBUILDER_ASSETS"; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

key="$( (go env GOVERSION; cat "$here"/*/go.mod "$here"/*/go.sum) | sha256sum | cut -c1-16)"
cache_root="${SANDBOX_OPERATOR_CACHE:-$HOME/.cache/sandbox-operator}"
out="$cache_root/k8s-bins/$key"

if has_all "$out"; then
  echo "$out"
  exit 0
fi

mkdir -p "$out"
export CGO_ENABLED=0 GOFLAGS=-trimpath

# Stamp version information the way the upstream release build does, so the
# apiserver reports a real version (kubectl and clients negotiate on it).
kube_version="$(cd "$here/kube" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
minor="$(echo "$kube_version" | cut -d. -f2)"
kube_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$kube_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"

build() { # module-dir output-name package [ldflags]
  local mod="$1" name="$2" pkg="$3" ldflags="${4:--s -w}"
  [[ -x "$out/$name" ]] && return 0
  echo "k8s-bins: building $name ($pkg)" >&2
  (cd "$here/$mod" && go build -ldflags "$ldflags" -o "$out/.$name.tmp" "$pkg")
  mv "$out/.$name.tmp" "$out/$name"
}

build etcd etcd go.etcd.io/etcd/server/v3
build kube kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$kube_ldflags"
build kube kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$kube_ldflags"
build kube kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$kube_ldflags"
build kube kubectl k8s.io/kubernetes/cmd/kubectl "$kube_ldflags"
build kwok kwok sigs.k8s.io/kwok/cmd/kwok
build helm helm helm.sh/helm/v3/cmd/helm "-s -w -X helm.sh/helm/v3/internal/version.version=v3.22.0"

echo "$out"
