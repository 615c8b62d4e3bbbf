# shellcheck shell=bash disable=SC2034  # sourced: the variables are used by the scripts that source it
# Shared by the hack/images scripts (sourced, not run). Sets:
#   repo         the checkout's root
#   img_cache    ~/.cache/sandbox-operator/images (or $SANDBOX_OPERATOR_CACHE/images)
#   DOCKER_HOST  exported, from hack/docker/ensure-dockerd.sh (starts dockerd if needed)
# and the helpers below. Messages go to stderr; stdout is left for results.

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache_root="${SANDBOX_OPERATOR_CACHE:-$HOME/.cache/sandbox-operator}"
img_cache="$cache_root/images"
mkdir -p "$img_cache"

# Image names, shared by build-all.sh and images/smoke-test.sh. The operator
# image is named as the Helm chart (repository sandbox-operator, tag = the
# chart's appVersion) and the controller's default --egress-image expect it.
base_image="${BASE_IMAGE_NAME:-sandbox-operator/debian-base:${BASE_SUITE:-bookworm}}"
node_image="${NODE_IMAGE:-sandbox-operator/node:20-bookworm}"
basic_image="${BASIC_IMAGE:-sandbox-operator/sandbox-basic:latest}"
operator_image="${OPERATOR_IMAGE:-sandbox-operator:$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$repo/package.json")}"

# Every image this repo builds carries this label: the hash of everything that
# determines it, so a script can tell "already built from the same inputs".
KEY_LABEL="dev.sandboxing.image.key"

log() { echo "${LOG_PREFIX:-images}: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ensure_docker() {
  [[ -n "${_docker_ready:-}" ]] && return 0
  DOCKER_HOST="$("$repo/hack/docker/ensure-dockerd.sh")" || die "no Docker engine"
  export DOCKER_HOST
  _docker_ready=1
}

# image_key IMAGE -> the key label of a local image, empty when absent.
image_key() {
  docker image inspect --format "{{index .Config.Labels \"$KEY_LABEL\"}}" "$1" 2>/dev/null || true
}

# hash_inputs STRING... -> 16 hex chars over the strings and, for those that are
# existing files or directories, their contents (sorted, path-relative).
hash_inputs() {
  local x
  for x in "$@"; do
    if [[ -d "$x" ]]; then
      (cd "$x" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
    elif [[ -f "$x" ]]; then
      printf '%s  ' "$(basename "$x")"; sha256sum <"$x"
    else
      printf '%s\n' "$x"
    fi
  done | sha256sum | cut -c1-16
}

# apt_uri SUITE -> the first archive URI this machine's apt sources use for SUITE
# (deb822 .sources and one-line .list files). Only that mirror is reachable here,
# so debootstrap and the images' own sources must point at it.
apt_uri() {
  local suite="$1" f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    # deb [opts] URI SUITE COMPONENTS...
    awk -v s="$suite" '$1=="deb" { i=2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i+1)==s) { print $i; exit } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    # Stanzas separated by blank lines; Types must include deb, Suites must list SUITE.
    awk -v s="$suite" 'BEGIN { RS=""; FS="\n" }
      { types=""; uris=""; suites=""; enabled="yes"
        for (i=1; i<=NF; i++) {
          if ($i ~ /^Types:/)   { types=$i }
          if ($i ~ /^URIs:/)    { uris=$i;   sub(/^URIs:[ \t]*/, "", uris) }
          if ($i ~ /^Suites:/)  { suites=" " $i " " }
          if ($i ~ /^Enabled:[ \t]*no/) { enabled="no" }
        }
        if (enabled=="yes" && types ~ /[ \t]deb([ \t]|$)/ && suites ~ ("[ \t]" s "[ \t]")) {
          split(uris, u, /[ \t]+/); print u[1]; exit } }' "$f"
  done
}

# first_line: the first non-empty line of stdin (apt_uri may print several).
first_line() { awk 'NF { print; exit }'; }

# Extra CA certificates a build needs to reach the npm registry from inside
# `docker build` (where this machine's CA bundle is not visible): the locally
# added CAs in /usr/local/share/ca-certificates (Debian's place for them, and
# where a TLS-intercepting egress proxy's CA lives, as on this machine), or the
# PEM file named by $BUILD_EXTRA_CA_FILE. Not $NODE_EXTRA_CA_CERTS: here it names
# the whole system bundle (~200 KB), too big for a build argument.
# Printed as one PEM blob; empty where none exist (a normal machine).
extra_ca_pem() {
  local f
  if [[ -n "${BUILD_EXTRA_CA_FILE:-}" ]]; then cat "$BUILD_EXTRA_CA_FILE"; return; fi
  for f in /usr/local/share/ca-certificates/*.crt; do
    [[ -f "$f" ]] && cat "$f" && echo
  done
  return 0
}

# image_size IMAGE -> "123 MB"
image_size() {
  docker image inspect --format '{{.Size}}' "$1" | awk '{ printf "%.0f MB", $1 / 1000000 }'
}
