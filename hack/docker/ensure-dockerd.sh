#!/usr/bin/env bash
# Makes a working Docker engine available on this machine, idempotently, and prints
# the DOCKER_HOST it uses on stdout (everything else goes to stderr):
#
#   export DOCKER_HOST="$(hack/docker/ensure-dockerd.sh)"
#
# 1. A daemon already answering (on $DOCKER_HOST if set, else the default socket)
#    is used as it is: a warm machine costs one `docker info` (~0.1 s).
# 2. dockerd missing -> Debian's docker.io (with containerd, runc, tini) from the
#    apt mirror in /etc/apt/sources.list(.d), the only place packages can come from.
#    The docker CLI may already be there (/usr/local/bin/docker); docker.io also
#    brings its own /usr/bin/docker, and PATH order decides which one runs. Both
#    negotiate the API version with the daemon, so either works.
# 3. No daemon answering -> start dockerd in the background (there is no init
#    system to do it: PID 1 is the VM's agent, and /usr/sbin/policy-rc.d forbids
#    service starts), log to $cache/dockerd.log, wait until `docker info` works.
#
# Choices made for this kind of machine (Firecracker VM, kernel without modules,
# ext4 root, cgroup v1 hierarchy, nf_tables iptables, eth0 MTU 1400):
#
# * Storage driver: overlay2 when the kernel can really mount overlayfs on the
#   filesystem holding /var/lib/docker (probed below with a scratch mount, since
#   'overlay' in /proc/filesystems alone does not prove it works there, e.g. when
#   /var/lib/docker is itself on overlayfs); otherwise vfs. vfs works everywhere
#   but copies every layer in full (slow, disk-hungry); fuse-overlayfs would need
#   /dev/fuse and an extra package, and it is not needed where overlay2 works.
#   On this machine overlay2 works. Override with DOCKERD_STORAGE_DRIVER.
# * iptables: kept ON (dockerd's default) when `iptables -t nat` works, as it does
#   here through iptables-nft: bridge networking with NAT is what lets containers
#   and `docker build` RUN steps reach the package mirror, and what the operator's
#   docker backend needs for per-sandbox networks. dockerd then also sets
#   net.ipv4.ip_forward=1 (it is 0 on a fresh machine). When the nat table is
#   unusable we start with --iptables=false --bridge=none and say so: containers
#   then only get networking with `--network host` (the build scripts use it).
#   Override with DOCKERD_IPTABLES=true|false.
# * MTU: the bridge MTU is set to the default route's interface MTU when that is
#   below 1500 (eth0 has 1400 here); a 1500 bridge behind a 1400 link stalls TLS
#   transfers that need PMTU discovery.
# * live-restore: containers keep running while dockerd restarts (an upgrade, a
#   crash); the operator's docker backend re-attaches and its sandboxes survive.
# * address pools: every docker sandbox has a network of its own; dockerd's
#   default pools hold ~30 networks, so /24s are carved from 172.16.0.0/12
#   instead (4096 networks).
# * cgroups: cgroupfs driver (dockerd's default without systemd), v1 hierarchy as
#   mounted by the VM; nothing to set.
#
# Environment:
#   SANDBOX_OPERATOR_CACHE   cache root (default ~/.cache/sandbox-operator)
#   DOCKERD_START_TIMEOUT    seconds to wait for a started daemon (default 60)
#   DOCKERD_STORAGE_DRIVER   force a storage driver (overlay2, vfs, ...)
#   DOCKERD_IPTABLES         force --iptables=true|false
set -euo pipefail

log() { echo "ensure-dockerd: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

cache_root="${SANDBOX_OPERATOR_CACHE:-$HOME/.cache/sandbox-operator}"
default_host="unix:///var/run/docker.sock"
timeout_s="${DOCKERD_START_TIMEOUT:-60}"
mkdir -p "$cache_root"

answers() { # DOCKER_HOST -> 0 when a daemon answers there
  command -v docker >/dev/null 2>&1 || return 1
  DOCKER_HOST="$1" timeout 10 docker info >/dev/null 2>&1
}

# 1. Fast path: a daemon already answers.
if [[ -n "${DOCKER_HOST:-}" ]]; then
  if answers "$DOCKER_HOST"; then echo "$DOCKER_HOST"; exit 0; fi
  # A DOCKER_HOST pointing elsewhere is the caller's choice: starting our own
  # daemon behind their back would silently build into a different engine.
  [[ "$DOCKER_HOST" == "$default_host" ]] ||
    die "DOCKER_HOST=$DOCKER_HOST does not answer; unset it to use a local dockerd"
fi
if answers "$default_host"; then echo "$default_host"; exit 0; fi

[[ $(id -u) -eq 0 ]] || die "no Docker daemon answers and starting one needs root"

# Serialize concurrent callers (make -j, two scripts at once): one installs and
# starts, the others wait for the lock and then find the daemon answering.
exec 9>"$cache_root/ensure-dockerd.lock"
flock -w "$((timeout_s + 600))" 9 || die "timed out waiting for another ensure-dockerd"
if answers "$default_host"; then echo "$default_host"; exit 0; fi

# 2. Install the engine when missing.
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  log "installing docker.io from the apt mirror"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # --no-install-recommends: skips apparmor, cgroupfs-mount, git, needrestart...
  # that the engine does not need here. tini is a hard dependency (docker-init).
  apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    docker.io containerd runc tini iptables >&2
fi
command -v dockerd >/dev/null || die "dockerd still missing after installing docker.io"

# 3. Start dockerd.
pidfile=/var/run/docker.pid
containerd_pidfile=/var/run/docker/containerd/containerd.pid
logfile="$cache_root/dockerd.log"

# alive PID [COMM]: running (not a zombie), and named COMM when given.
alive() {
  [[ -n "$1" ]] && grep -q '^State:[[:space:]]*[^Z]' "/proc/$1/status" 2>/dev/null &&
    { [[ -z "${2:-}" ]] || [[ "$(cat "/proc/$1/comm" 2>/dev/null)" == "$2" ]]; }
}

# wait_ready PID: 0 once the daemon answers, 1 if PID is gone first; dies on timeout.
wait_ready() {
  local deadline=$((SECONDS + timeout_s))
  until answers "$default_host"; do
    alive "$1" || return 1
    ((SECONDS < deadline)) || die "dockerd did not answer within ${timeout_s}s (see $logfile)"
    sleep 0.5
  done
}

ready() {
  log "dockerd ready ($(DOCKER_HOST="$default_host" docker info --format '{{.ServerVersion}}, storage {{.Driver}}'))"
  echo "$default_host"
  exit 0
}

# 3a. A daemon already running but not answering yet (still starting): wait for
# it instead of starting a second one on the same data root.
pid="$(cat "$pidfile" 2>/dev/null || true)"
if alive "$pid" dockerd; then
  log "dockerd (pid $pid) is running but not answering yet; waiting"
  if wait_ready "$pid"; then ready; fi
  log "dockerd (pid $pid) exited; starting a new one"
fi

# 3b. Stale state from a daemon that was killed (a session's processes are
# killed when it ends, and /run is on the persistent root disk here): pidfiles
# naming a dead or unrelated process make dockerd refuse to start or wait for
# a containerd that is not there. The socket file dockerd replaces itself.
pid="$(cat "$pidfile" 2>/dev/null || true)"
if [[ -f "$pidfile" ]] && ! alive "$pid" dockerd; then
  log "removing stale $pidfile"; rm -f "$pidfile"
fi
pid="$(cat "$containerd_pidfile" 2>/dev/null || true)"
if [[ -f "$containerd_pidfile" ]] && ! alive "$pid" containerd; then
  log "removing stale $containerd_pidfile"; rm -f "$containerd_pidfile"
fi

# 3c. Start one.
data_root=/var/lib/docker
mkdir -p "$data_root"
args=(--host "$default_host" --data-root "$data_root" --pidfile "$pidfile" --live-restore
  --default-address-pool base=172.16.0.0/12,size=24)

driver="${DOCKERD_STORAGE_DRIVER:-}"
if [[ -z "$driver" ]]; then
  probe="$(mktemp -d "$data_root/.overlay-probe.XXXXXX")"
  mkdir -p "$probe"/{l,u,w,m}
  if mount -t overlay overlay -o "lowerdir=$probe/l,upperdir=$probe/u,workdir=$probe/w" "$probe/m" 2>/dev/null; then
    umount "$probe/m"
    driver=overlay2
  else
    driver=vfs
    log "overlayfs cannot be mounted on $data_root: using the slow vfs storage driver"
  fi
  rm -rf "$probe"
fi
args+=(--storage-driver "$driver")

ipt="${DOCKERD_IPTABLES:-}"
if [[ -z "$ipt" ]]; then
  if iptables -t nat -L -n >/dev/null 2>&1; then ipt=true; else ipt=false; fi
fi
if [[ "$ipt" == true ]]; then
  args+=(--iptables=true)
else
  log "iptables nat table unusable: no bridge network; containers need --network host"
  args+=(--iptables=false --bridge=none)
fi

dev="$(ip route show default 2>/dev/null | awk '{for(i=1;i<NF;i++) if($i=="dev"){print $(i+1); exit}}')"
mtu="$(cat "/sys/class/net/${dev:-none}/mtu" 2>/dev/null || echo 1500)"
if [[ "$mtu" -lt 1500 ]]; then args+=(--mtu "$mtu"); fi

log "starting dockerd ${args[*]} (log: $logfile)"
# setsid + nohup: the daemon must outlive this script and the caller's shell.
# Every descriptor above 2 is closed first: the daemon must not inherit (and
# so hold for its whole life) the lock taken above, nor a caller's — `flock
# /tmp/sbx-docker.lock CMD` hands its locked descriptor down to CMD, and a
# dockerd started under it kept that shared lock held forever.
(
  for fd in /proc/self/fd/*; do
    n="${fd##*/}"
    if ((n > 2)); then eval "exec $n>&-"; fi
  done 2>/dev/null
  exec setsid nohup dockerd "${args[@]}" >>"$logfile" 2>&1 </dev/null
) &
pid=$!
if wait_ready "$pid"; then ready; fi
tail -n 30 "$logfile" >&2 || true
die "dockerd exited during startup (log above: $logfile)"
