#!/usr/bin/env bash
# Builds a kind node image locally (no registry is reachable here):
#   kind/node-image/Dockerfile FROM the local Debian base, kind's node files from
#   the kind module, kubelet/kubeadm/kubectl and the control-plane images
#   (kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, etcd,
#   pause) built from the same Go modules the test harness uses.
# Needs the Docker engine (hold /tmp/sbx-docker.lock). Prints the image name.
#
#   NODE_IMAGE   image name (default sandbox-operator/kind-node:<kubernetes version>)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOG_PREFIX=kind-node-image
# shellcheck source-path=SCRIPTDIR source=../images/lib.sh
source "$repo/hack/images/lib.sh"

kind_bins="$(bash "$repo/hack/kind/build.sh")"
k8s_bins="$(bash "$repo/hack/k8s-bins/build.sh")"
node_bins="$(bash "$repo/hack/k8s-bins/node/build.sh")"
version="$("$node_bins/kubelet" --version | awk '{print $2}')"
image="${NODE_IMAGE:-sandbox-operator/kind-node:$version}"
ensure_docker
base="$(bash "$repo/hack/images/build-base.sh")"

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT

# The image tags kubeadm will ask for.
declare -A want
while read -r ref; do
  name="${ref##*/}"
  want["${name%%:*}"]="$ref"
done < <("$kind_bins/kubeadm" config images list --kubernetes-version "$version" 2>/dev/null)
log "kubeadm $version wants: ${want[*]}"

# Control-plane images: the binary on the Debian base (kube-proxy also needs iptables).
component() { # name binary-path
  local name="$1" bin="$2" dir="$ctx/img-$1"
  mkdir -p "$dir"
  cp "$bin" "$dir/$name"
  {
    echo "FROM $base"
    [[ "$name" == kube-proxy ]] && echo "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables conntrack ipset kmod && rm -rf /var/lib/apt/lists/*"
    echo "COPY $name /usr/local/bin/$name"
    echo "ENTRYPOINT [\"/usr/local/bin/$name\"]"
  } >"$dir/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t "${want[$name]}" "$dir" >/dev/null
}
component kube-apiserver "$k8s_bins/kube-apiserver"
component kube-controller-manager "$k8s_bins/kube-controller-manager"
component kube-scheduler "$k8s_bins/kube-scheduler"
component etcd "$k8s_bins/etcd"
component kube-proxy "$node_bins/kube-proxy"
pause_ref="$(docker load -i "$node_bins/pause.tar" | sed -n 's/^Loaded image: //p')"
docker tag "$pause_ref" "${want[pause]}"
preload=("${want[kube-apiserver]}" "${want[kube-controller-manager]}" "${want[kube-scheduler]}" "${want[etcd]}" "${want[kube-proxy]}" "${want[pause]}")
log "saving ${#preload[@]} images (coredns is not built here: it stays ImagePullBackOff)"
docker save -o "$ctx/images.tar" "${preload[@]}"

# kind's node files from the module cache, then ours over them.
kind_mod="$(cd "$repo/hack/kind" && go list -m -f '{{.Dir}}' sigs.k8s.io/kind)"
mkdir -p "$ctx/files"
cp -r "$kind_mod/images/base/files/." "$ctx/files/"
chmod -R u+w "$ctx/files"
cp -r "$repo/kind/node-image/overlay/." "$ctx/files/"
sed -i "s|sandbox_image = .*|sandbox_image = \"${want[pause]}\"|" "$ctx/files/etc/containerd/config.toml"
echo "$version" >"$ctx/files/kind/version"
mkdir -p "$ctx/bin"
cp "$kind_bins/kubeadm" "$node_bins/kubelet" "$k8s_bins/kubectl" "$ctx/bin/"
cp "$repo/kind/node-image/Dockerfile" "$ctx/"
DOCKER_BUILDKIT=0 docker build --force-rm -q --build-arg "BASE_IMAGE=$base" -t "$image" "$ctx" >&2
log "built $image"
echo "$image"
