# The sandbox-operator image: one executable, several entry points
#   docker run IMAGE controller [flags]    the Sandbox controller
#   docker run IMAGE egress ...            the egress sidecar (TypeScript; the backends run the Go one:)
#   docker run --entrypoint /app/dist/egress/sandbox-egress IMAGE egress|egress-init ...
#                                          the egress sidecar / the lockdown (needs NET_ADMIN, root)
#   docker run IMAGE version | help | crds
#
#   docker build -t sandbox-operator .                       # FROM node:20-bookworm-slim
#   docker build --build-arg BASE_IMAGE=sandbox-operator/node:20-bookworm -t ... .
#                                     # what hack/images/build-all.sh does where no
#                                     # registry image can be pulled
#
# No `# syntax=` line on purpose: it makes BuildKit pull a frontend image, which
# fails where no registry is reachable. Plain Dockerfile syntax, so the classic
# builder and BuildKit both build it.
ARG BASE_IMAGE=node:20-bookworm-slim

# --- build: all dependencies, bundle the operator into dist/ -----------------
FROM ${BASE_IMAGE} AS build
WORKDIR /src
# EXTRA_CA_CERTS: optional PEM text, for builds behind a TLS-intercepting proxy
# (as on the machines this project is developed on). Used by npm in this stage
# only; it never reaches the runtime image.
ARG EXTRA_CA_CERTS=""
# `npm install` + LOCK_CHECK rather than `npm ci`: the same exact versions, and
# the build fails when package.json and the lockfile disagree (npm install
# would re-resolve; LOCK_CHECK then sees a version that moved), but it tolerates
# optional per-platform packages that a registry lacks (the registry mirror
# here has only the linux builds of @biomejs/cli-* 2.6.8, and `npm ci` rejects
# the lockfile for that). Versions are compared, not bytes: npm 10 (in node:20
# images) rewrites an npm 11 lockfile's metadata (drops its "libc" fields).
# --ignore-scripts: no dependency needs its install script here (the native
# bindings of ssh2/cpu-features are optional, esbuild's binary comes in its
# platform package, protobufjs's script only prints).
ENV NPM_CONFIG_UPDATE_NOTIFIER=false \
    LOCK_CHECK="const a=require('/tmp/package-lock.json').packages,b=require('/src/package-lock.json').packages;const d=Object.keys({...a,...b}).filter(k=>k&&a[k]?.version!==b[k]?.version);if(d.length){console.error('package-lock.json is out of date with package.json (run npm install, commit it):',d.join(' '));process.exit(1)}"
# Manifests first: the install layer stays cached until they change.
COPY package.json package-lock.json ./
RUN cp package-lock.json /tmp/package-lock.json \
 && if [ -n "$EXTRA_CA_CERTS" ]; then printf '%s\n' "$EXTRA_CA_CERTS" >/tmp/extra-ca.pem \
      && export NODE_EXTRA_CA_CERTS=/tmp/extra-ca.pem; fi \
 && npm install --ignore-scripts --no-audit --no-fund --loglevel=warn \
 && node -e "$LOCK_CHECK" && rm -f /tmp/extra-ca.pem
COPY hack/build.mjs ./hack/
COPY src ./src
# The bundle is the whole program (dependencies included): the runtime image
# needs no node_modules. Source maps stay behind.
RUN npm run build && find dist -name '*.map' -delete

# --- runtime -----------------------------------------------------------------
FROM ${BASE_IMAGE}
# iptables: egress-init programs the pod's/container's firewall (Debian's
# package has both the nft and legacy backends).
# tini as PID 1: the kernel drops signals whose handler is the default for
# PID 1, so a node process there ignores SIGTERM unless the code installs a
# handler (the controller does; other entry points may not), and nothing would reap orphaned children (egress-init runs iptables
# binaries). `docker run --init` would do the same, but Kubernetes has no such
# switch, so the image carries it (Debian's tini, ~30 KB).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd -g 65532 nonroot \
 && useradd -u 65532 -g 65532 -M -d /nonexistent -s /usr/sbin/nologin nonroot

WORKDIR /app
ENV NODE_ENV=production
# package.json: "type": "module" makes node load dist/ as ES modules.
COPY package.json ./
COPY --from=build /src/dist ./dist
# The in-sandbox agent, built static by `make agent` before the image (Go is a
# host build dependency already; no Go image needs pulling). The backends copy
# it into each sandbox: it never runs in this image.
COPY dist/agent/sandbox-agent ./dist/agent/sandbox-agent
# The egress lockdown and sidecar (static Go, `make egress`): what both
# backends run in the egress-init and egress containers. No Node.js start, a
# few MiB resident instead of ~57.
COPY dist/egress/sandbox-egress ./dist/egress/sandbox-egress

# Non-root by default; egress-init is the exception and its pod spec sets
# runAsUser: 0 with NET_ADMIN for that one init container.
USER 65532:65532
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/dist/cli/main.js"]
CMD ["help"]
