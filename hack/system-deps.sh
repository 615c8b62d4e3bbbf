#!/usr/bin/env bash
# Installs the Debian packages the tests use, when missing: the egress tests build
# network namespaces (iproute2), program the firewall with both iptables variants
# (iptables, nftables), run the workload as another UID (util-linux's setpriv) and
# poke at it with curl, dig (dnsutils) and openssl. Needs root, as those tests do.
#
# The real test node (test/support/node) adds: containerd and runc (Debian's
# containerd 1.6.20 / runc 1.1.5, the ones docker.io depends on; kubelet 1.34
# needs CRI v1, which containerd 1.6 serves), containernetworking-plugins (bridge,
# host-local, loopback, portmap in /usr/lib/cni), ipset (kube-router's
# NetworkPolicy sets) and conntrack (kube-proxy clears stale UDP entries with it).
set -euo pipefail

packages=(iproute2 iptables nftables util-linux curl dnsutils openssl
  containerd runc containernetworking-plugins ipset conntrack)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "system-deps: missing ${missing[*]}; run as root or install them" >&2
  exit 1
fi
echo "system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
