#!/usr/bin/env bash
# Installs the Debian packages the tests use, when missing: the egress tests build
# network namespaces (iproute2), program the firewall with both iptables variants
# (iptables, nftables), run the workload as another UID (util-linux's setpriv) and
# poke at it with curl, dig (dnsutils) and openssl. Needs root, as those tests do.
set -euo pipefail

packages=(iproute2 iptables nftables util-linux curl dnsutils openssl)
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
