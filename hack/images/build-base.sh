#!/usr/bin/env bash
# Builds the Debian base image every local image starts from, without pulling
# anything from a container registry (none is reachable here): debootstrap a
# minbase root filesystem from this machine's apt mirror, then `docker import` it.
#
#   hack/images/build-base.sh            # prints the image name on stdout
#
# Cached twice, both keyed by what determines the result (suite, variant, extra
# packages, mirror, architecture, this script):
#   ~/.cache/sandbox-operator/images/debian-<suite>-<variant>-<key>.tar.gz
#       the rootfs tarball: a warm machine skips debootstrap (~1-2 min);
#   label dev.sandboxing.image.key=<key> on the image
#       an image with the same key is left alone (no re-import, so the image ID
#       and with it every derived image's build cache stay valid).
#
# Environment:
#   BASE_SUITE      Debian suite (default bookworm)
#   BASE_VARIANT    debootstrap variant (default minbase)
#   BASE_INCLUDE    extra packages, comma-separated (default: none)
#   BASE_IMAGE_NAME image name (default sandbox-operator/debian-base:<suite>)
#   DEBIAN_MIRROR   archive URI (default: the one /etc/apt/sources.list(.d) uses)
#   BASE_REBUILD=1  ignore both caches
set -euo pipefail
LOG_PREFIX=build-base
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

suite="${BASE_SUITE:-bookworm}"
variant="${BASE_VARIANT:-minbase}"
include="${BASE_INCLUDE:-}"
image="${BASE_IMAGE_NAME:-sandbox-operator/debian-base:$suite}"
arch="$(dpkg --print-architecture)"
mirror="${DEBIAN_MIRROR:-$(apt_uri "$suite" | first_line)}"
[[ -n "$mirror" ]] || die "no apt source for suite $suite in /etc/apt/sources.list(.d); set DEBIAN_MIRROR"
security_mirror="$(apt_uri "$suite-security" | first_line)"
security_mirror="${security_mirror:-${mirror%/debian}/debian-security}"

key="$(hash_inputs "suite=$suite" "variant=$variant" "include=$include" \
  "mirror=$mirror" "security=$security_mirror" "arch=$arch" "${BASH_SOURCE[0]}")"
tarball="$img_cache/debian-$suite-$variant-$key.tar.gz"

ensure_docker
if [[ -z "${BASE_REBUILD:-}" && "$(image_key "$image")" == "$key" ]]; then
  log "$image is up to date (key $key)"
  echo "$image"
  exit 0
fi

if [[ -n "${BASE_REBUILD:-}" || ! -s "$tarball" ]]; then
  command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      -o Dpkg::Use-Pty=0 debootstrap debian-archive-keyring >&2
  }
  work="$(mktemp -d "$img_cache/.rootfs.XXXXXX")"
  # debootstrap mounts /proc and /sys in the chroot; on any exit unmount them
  # before deleting, or rm -rf would descend into the host's /proc and /sys.
  cleanup() {
    local m
    awk -v r="$work/rootfs" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r |
      while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf --one-file-system "$work"
  }
  trap cleanup EXIT
  rootfs="$work/rootfs"
  log "debootstrap --variant=$variant $suite from $mirror (log: $img_cache/debootstrap.log)"
  start=$SECONDS
  args=(--variant="$variant" --arch="$arch" --keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
  [[ -n "$include" ]] && args+=(--include="$include")
  if ! debootstrap "${args[@]}" "$suite" "$rootfs" "$mirror" >"$img_cache/debootstrap.log" 2>&1; then
    tail -n 30 "$img_cache/debootstrap.log" >&2
    [[ -f "$rootfs/debootstrap/debootstrap.log" ]] && tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2
    die "debootstrap failed"
  fi
  log "debootstrap done in $((SECONDS - start))s"

  # Make the tree a container image root, the way Debian's official images do:
  # apt sources for the same mirror (base, -updates, -security), no service
  # starts inside builds, no cached .debs or package lists kept in layers.
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  printf 'Acquire::GzipIndexes "true";\nAcquire::CompressionTypes::Order:: "gz";\n' \
    >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"$rootfs/etc/apt/apt.conf.d/docker-no-recommends"
  # Slim, as Debian's -slim images do: no docs (copyright files kept, for the
  # licenses), man pages or translations, now and for packages that derived
  # images install later. Saves ~45 MB here and more in every derived image.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,linda,locale}/*
  # Nothing host- or run-specific in the image: Docker supplies hosts,
  # hostname and resolv.conf at run time; machine-id stays empty as in Debian's.
  rm -rf "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* \
    "$rootfs"/var/cache/ldconfig/aux-cache "$rootfs"/tmp/* "$rootfs"/var/tmp/*
  : >"$rootfs/etc/machine-id"
  : >"$rootfs/etc/resolv.conf"
  echo localhost >"$rootfs/etc/hostname"

  # Sorted, numeric owners, mtimes clamped to a fixed date, gzip without a
  # timestamp: the tarball depends on the packages, not on when it was made.
  # /dev, /proc, /sys stay empty: the runtime provides them.
  log "packing $tarball"
  tar --create --sort=name --numeric-owner --xattrs --acls \
    --mtime=@1700000000 --clamp-mtime --directory "$rootfs" \
    --exclude=./dev/* --exclude=./proc/* --exclude=./sys/* --exclude=./run/* . |
    gzip -n -6 >"$tarball.tmp"
  mv "$tarball.tmp" "$tarball"
  # Older tarballs of the same suite/variant are superseded.
  find "$img_cache" -maxdepth 1 -name "debian-$suite-$variant-*.tar.gz" ! -name "$(basename "$tarball")" -delete
else
  log "using cached rootfs $tarball"
fi

old_id="$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
log "docker import -> $image"
docker import \
  --change "LABEL $KEY_LABEL=$key" \
  --change "LABEL org.opencontainers.image.title=debian-base org.opencontainers.image.version=$suite-$variant" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
  --change 'CMD ["bash"]' \
  "$tarball" "$image" >/dev/null
# The image it replaces is now untagged; drop it unless something still uses it
# (a container, or a derived image: then docker refuses and it stays).
if [[ -n "$old_id" ]]; then docker rmi "$old_id" >/dev/null 2>&1 || true; fi
echo "$image"
