#!/usr/bin/env bash
# shellcheck disable=SC2016 # check scripts are single-quoted on purpose: they expand in the container
# Smoke test of the locally built images: runs a container of each (offline:
# --network none) and checks that every tool it promises works and who it runs as.
#
#   images/smoke-test.sh            # all images hack/images/build-all.sh builds
#   images/smoke-test.sh basic      # some: base node basic operator
#
# Prints one line per check and a closing "N passed, N failed"; exits non-zero
# on any failure. Needs the images (hack/images/build-all.sh) and a daemon.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_PREFIX=smoke-test
# shellcheck source-path=SCRIPTDIR source=../hack/images/lib.sh
source "$here/../hack/images/lib.sh"


passed=0 failed=0
# Each check runs inside the container as `check NAME COMMAND...` and prints
# "ok NAME" or "FAIL NAME: output"; this side counts them.
checks_lib='
check() { name="$1"; shift
  if out="$("$@" 2>&1)"; then echo "ok   $name"; else echo "FAIL $name: $(echo "$out" | tail -n 3 | tr "\n" " ")"; fi; }
'

# run_checks IMAGE SCRIPT [docker run args...]: SCRIPT runs in bash in the container.
run_checks() {
  local image="$1" script="$2" line rc=0 out
  shift 2
  if ! docker image inspect "$image" >/dev/null 2>&1; then
    echo "FAIL $image: image missing (hack/images/build-all.sh)"; failed=$((failed + 1)); return
  fi
  echo "== $image ($(image_size "$image"))"
  out="$(docker run --rm --network none "$@" --entrypoint bash "$image" -c "$checks_lib$script" 2>&1)" || rc=$?
  while IFS= read -r line; do
    echo "  $line"
    case "$line" in "ok "*) passed=$((passed + 1)) ;; "FAIL "*) failed=$((failed + 1)) ;; esac
  done <<<"$out"
  if ((rc != 0)); then echo "  FAIL container exited $rc"; failed=$((failed + 1)); fi
}

test_base() {
  run_checks "$base_image" '
check "debian 12 (bookworm)"  grep -q "^12\." /etc/debian_version
check "apt works"             apt-get --version
check "no docs shipped"       test ! -e /usr/share/man/man1
check "apt sources set"       grep -q "bookworm-security" /etc/apt/sources.list.d/debian.sources
'
}

test_node() {
  run_checks "$node_image" '
check "node 20"               bash -c "node --version | grep -q ^v20\\."
check "node runs code"        node -e "if (require(\"crypto\").createHash(\"sha256\").update(\"x\").digest(\"hex\").length !== 64) process.exit(1)"
check "node has ICU"          node -e "if (new Intl.NumberFormat(\"de-DE\").format(1234.5) !== \"1.234,5\") process.exit(1)"
check "npm"                   npm --version
'
}

test_basic() {
  run_checks "$basic_image" '
check "runs as uid 1000"      test "$(id -u):$(id -g)" = 1000:1000
check "user is sandbox"       test "$(id -un)" = sandbox
check "not root"              test "$(id -u)" -ne 0
check "workdir /workspace"    test "$PWD" = /workspace
check "/workspace writable"   touch /workspace/.probe
check "HOME writable"         touch "$HOME/.probe"
check "bash"                  bash -c "[[ \$BASH_VERSION == 5.* ]]"
check "python3"               python3 -c "import json, sqlite3, ssl; print(json.dumps({\"ok\": 1}))"
check "node 20"               bash -c "node -e \"process.exit(process.versions.node.startsWith(\\\"20.\\\") ? 0 : 1)\""
check "git"                   bash -c "cd /workspace && git init -q r && cd r && git -c user.name=t -c user.email=t@t commit -q --allow-empty -m x && git log --oneline | grep -q x"
check "curl"                  bash -c "curl -fsS file:///etc/hostname >/dev/null"
check "curl has TLS"          bash -c "curl --version | grep -qi https"
check "jq"                    jq -n -e "{a: [1, 2]} | .a | add == 3"
check "busybox"               bash -c "busybox echo hi | grep -q hi && busybox --list | grep -q ^wget$"
check "ca-certificates"       test -s /etc/ssl/certs/ca-certificates.crt
check "cannot write /usr"     bash -c "! touch /usr/.probe 2>/dev/null"
'
}

test_operator() {
  local out
  run_checks "$operator_image" '
check "runs as uid 65532"     test "$(id -u):$(id -g)" = 65532:65532
check "not root"              test "$(id -u)" -ne 0
check "tini"                  /usr/bin/tini --version
check "iptables (nft)"        bash -c "iptables --version | grep -q nf_tables"
check "iptables-legacy"       iptables-legacy --version
check "node 20"               bash -c "node --version | grep -q ^v20\\."
check "production deps only"  bash -c "! test -e /app/node_modules/typescript && ! test -e /app/node_modules/vitest"
check "NODE_ENV=production"   test "$NODE_ENV" = production
'
  # Through the real entry point: tini -> node /app/dist/cli/main.js.
  local args
  for args in "version" "--version" "help" "controller --help" "egress --help" "egress-init --help" "crds"; do
    # shellcheck disable=SC2086 # word splitting of args is the point
    if out="$(docker run --rm --network none "$operator_image" $args 2>&1)" && [[ -n "$out" ]]; then
      echo "  ok   entrypoint: $args ($(echo "$out" | head -n 1))"; passed=$((passed + 1))
    else
      echo "  FAIL entrypoint: $args: $(echo "$out" | tail -n 3)"; failed=$((failed + 1))
    fi
  done
  # egress-init for real: programs iptables/ip6tables (nf_tables) in the
  # container's own network namespace, as the init container does (root + NET_ADMIN).
  if out="$(docker run --rm --network none --user 0 --cap-add NET_ADMIN --entrypoint bash "$operator_image" -c \
    'printf "defaultAction: deny\nrules:\n  - {action: allow, target: api.example.com}\n" >/tmp/p.yaml &&
     exec /usr/bin/tini -- node /app/dist/cli/main.js egress-init --policy-file /tmp/p.yaml' 2>&1)"; then
    echo "  ok   egress-init installs the firewall (root, NET_ADMIN)"; passed=$((passed + 1))
  else
    echo "  FAIL egress-init: $(echo "$out" | tail -n 3)"; failed=$((failed + 1))
  fi
  # The Go egress binary both backends run: static, and egress-init for real as
  # the pod's init container runs it (its own PID 1, root + NET_ADMIN).
  if out="$(docker run --rm --network none --entrypoint /app/dist/egress/sandbox-egress "$operator_image" version 2>&1)"; then
    echo "  ok   egress binary: $out"; passed=$((passed + 1))
  else
    echo "  FAIL egress binary: $(echo "$out" | tail -n 3)"; failed=$((failed + 1))
  fi
  if out="$(docker run --rm --network none --user 0 --cap-add NET_ADMIN --entrypoint bash "$operator_image" -c \
    'printf "defaultAction: deny\nrules:\n  - {action: allow, target: api.example.com}\n" >/tmp/p.yaml &&
     exec /app/dist/egress/sandbox-egress egress-init --policy-file /tmp/p.yaml' 2>&1)"; then
    echo "  ok   Go egress-init installs the firewall (root, NET_ADMIN)"; passed=$((passed + 1))
  else
    echo "  FAIL Go egress-init: $(echo "$out" | tail -n 3)"; failed=$((failed + 1))
  fi
  # PID 1 is tini, and SIGTERM ends the container promptly (docker stop would
  # otherwise wait its 10 s and SIGKILL). `sleep` is not signal-aware itself:
  # tini forwards the signal and the default action applies to it.
  local cid start
  cid="$(docker run -d --network none --entrypoint /usr/bin/tini "$operator_image" -- sleep 60)"
  if [[ "$(docker exec "$cid" cat /proc/1/comm)" == tini ]]; then
    echo "  ok   tini is PID 1"; passed=$((passed + 1))
  else
    echo "  FAIL tini is not PID 1"; failed=$((failed + 1))
  fi
  start=$SECONDS
  docker stop -t 10 "$cid" >/dev/null
  if ((SECONDS - start < 5)); then
    echo "  ok   SIGTERM stops the container ($((SECONDS - start))s)"; passed=$((passed + 1))
  else
    echo "  FAIL SIGTERM ignored: docker stop took $((SECONDS - start))s"; failed=$((failed + 1))
  fi
  docker rm -f "$cid" >/dev/null 2>&1 || true
}

targets=("$@")
((${#targets[@]})) || targets=(base node basic operator)
ensure_docker
for t in "${targets[@]}"; do
  case "$t" in
    base | node | basic | operator) "test_$t" ;;
    *) die "unknown image '$t' (base, node, basic, operator)" ;;
  esac
done
echo "smoke-test: $passed passed, $failed failed"
((failed == 0))
