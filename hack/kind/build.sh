#!/usr/bin/env bash
# Builds what the kind loop needs and cannot pull here: the kind CLI (pinned in
# go.mod beside this script, from the Go module proxy) and kubeadm (from
# kubeadm/, pinned to the same k8s.io/kubernetes as hack/k8s-bins/node, so it is the kubelet's
# version). Cached under ~/.cache/sandbox-operator/kind/<key>, keyed by the Go
# version and both modules; prints that directory on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kube_mod="$here/kubeadm"
key="$( (go env GOVERSION; cat "$here/go.mod" "$here/go.sum" "$kube_mod/go.mod" "$kube_mod/go.sum") | sha256sum | cut -c1-16)"
out="${SANDBOX_OPERATOR_CACHE:-$HOME/.cache/sandbox-operator}/kind/$key"
if [[ -x "$out/kind" && -x "$out/kubeadm" ]]; then echo "$out"; exit 0; fi
mkdir -p "$out"
export CGO_ENABLED=0 GOFLAGS=-trimpath
if [[ ! -x "$out/kind" ]]; then
  echo "kind: building kind $(cd "$here" && go list -m -f '{{.Version}}' sigs.k8s.io/kind)" >&2
  (cd "$here" && nice -n 10 go build -ldflags "-s -w" -o "$out/.kind.tmp" sigs.k8s.io/kind)
  mv "$out/.kind.tmp" "$out/kind"
fi
if [[ ! -x "$out/kubeadm" ]]; then
  v="$(cd "$kube_mod" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
  minor="$(echo "$v" | cut -d. -f2)"
  echo "kind: building kubeadm $v" >&2
  (cd "$kube_mod" && nice -n 10 go build -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean" -o "$out/.kubeadm.tmp" k8s.io/kubernetes/cmd/kubeadm)
  mv "$out/.kubeadm.tmp" "$out/kubeadm"
fi
echo "$out"
