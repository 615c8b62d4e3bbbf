# sandbox-operator — everyday targets. `make help` lists them.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help
NPM ?= npm

include hack/images/images.mk
include kind/kind.mk

.PHONY: help
help: ## List targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# `npm install --no-save` rather than `npm ci` or a plain install: with a lock
# present it installs exactly the locked versions, and --no-save keeps it from
# rewriting package-lock.json, so `make deps` leaves a fresh clone's tree clean
# whatever the registry it reaches lists (a registry that lists other platforms'
# optional binaries, e.g. @biomejs/cli-darwin-x64, made a plain install add ~134
# lines; the lock now lists them all). To change dependencies, run npm yourself.
node_modules: package.json package-lock.json
	$(NPM) install --no-audit --no-fund --no-save
	@touch node_modules

.PHONY: deps
deps: system-deps node_modules k8s-bins node-bins storage-bins ## Install packages and build the test control plane and node binaries

.PHONY: system-deps
system-deps: ## Debian packages the egress tests need (iproute2, iptables, ...; root)
	@bash hack/system-deps.sh

.PHONY: k8s-bins
k8s-bins: ## Build etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok (cached)
	@bash hack/k8s-bins/build.sh

.PHONY: node-bins
node-bins: ## Build the test node's kubelet, kube-proxy, kube-router and pause image (cached)
	@nice -n 10 bash hack/k8s-bins/node/build.sh >/dev/null

.PHONY: storage-bins
storage-bins: ## Build the test node's storage: local-path provisioner, CSI hostpath driver, external-snapshotter (cached; the CSI part's first build takes minutes)
	@nice -n 10 bash hack/storage/build.sh local >/dev/null
	@nice -n 10 bash hack/storage/build.sh csi >/dev/null

.PHONY: storage-bins-csi
storage-bins-csi: ## Build only the test node's CSI hostpath driver and external-snapshotter (cached)
	@nice -n 10 bash hack/storage/build.sh csi >/dev/null

.PHONY: build
build: node_modules agent egress ## Bundle the operator into dist/ (esbuild; dist/cli/main.js is the sandbox-operator executable), build the agent and the egress binary
	$(NPM) run build

# The in-sandbox agent: a static Go executable (no libc, no interpreter) that
# runs inside any user image. Go's build cache makes an unchanged tree a no-op.
AGENT_VERSION ?= $(shell node -p 'require("./package.json").version' 2>/dev/null || echo dev)
.PHONY: agent
agent: ## Build the in-sandbox agent into dist/agent/sandbox-agent (static, CGO_ENABLED=0)
	cd agent && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags '-s -w -X main.version=$(AGENT_VERSION)' \
	  -o ../dist/agent/sandbox-agent ./cmd/sandbox-agent

.PHONY: test-agent
test-agent: ## Go tests of the agent (as an unprivileged user, in a mount namespace; root)
	cd agent && go vet ./... && nice -n 10 go test -count=1 ./... 2>&1 | tee /dev/stderr | \
	  awk '/^ok/{ok++} /^FAIL/{f++} END{printf "\nagent go tests: %d packages passed, %d failed\n", ok, f; exit f>0}'

# The egress lockdown and sidecar: one static Go executable (egress-init,
# egress), what both backends run in the sidecar container. The TypeScript
# implementation (`sandbox-operator egress`) stays as bench/egress's baseline.
.PHONY: egress
egress: ## Build the egress lockdown + sidecar into dist/egress/sandbox-egress (static, CGO_ENABLED=0)
	cd native/egress && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags '-s -w -X main.version=$(AGENT_VERSION)' \
	  -o ../../dist/egress/sandbox-egress ./cmd/sandbox-egress

.PHONY: test-egress-go
test-egress-go: ## Go tests of the egress binary (policy vectors, lockdown rules, proxies on loopback)
	cd native/egress && go vet ./... && nice -n 10 go test -count=1 ./... 2>&1 | tee /dev/stderr | \
	  awk '/^ok/{ok++} /^FAIL/{f++} END{printf "\negress go tests: %d packages passed, %d failed\n", ok, f; exit f>0}'

.PHONY: run
run: node_modules k8s-bins ## Local control plane + the controller, with examples/hello.yaml applied (Ctrl-C stops)
	$(NPM) exec -- tsx hack/run-local.ts

.PHONY: dev
dev: node_modules k8s-bins ## Local control plane + the controller with the docker backend, examples/hello.yaml run as containers (Ctrl-C stops)
	$(NPM) exec -- tsx hack/run-local.ts --docker

.PHONY: bench
bench: node_modules k8s-bins ## Benchmarks: scale (bench/results/scale/) and egress (bench/results/egress.json)
	$(NPM) run --silent bench:scale
	$(NPM) run --silent bench:egress

.PHONY: crds
crds: node_modules ## Regenerate crds/ from the zod schemas in src/api
	$(NPM) run --silent crds

.PHONY: crds-check
crds-check: node_modules ## Fail when crds/ differs from what src/api generates
	$(NPM) run --silent crds -- --check

.PHONY: lint
lint: node_modules ## Biome lint + format check
	$(NPM) run --silent lint

.PHONY: typecheck
typecheck: node_modules ## tsc --noEmit
	$(NPM) run --silent typecheck

.PHONY: test-unit
test-unit: node_modules ## Unit tests (pure logic)
	$(NPM) run --silent test:unit

.PHONY: test-integration
test-integration: node_modules k8s-bins ## Integration tests against a real etcd + kube-apiserver
	$(NPM) run --silent test:integration

.PHONY: test-egress
test-egress: system-deps build ## Egress tests in real network namespaces (root; they run the built CLI)
	$(NPM) exec -- vitest run --project egress

.PHONY: test-docker
test-docker: node_modules k8s-bins build images ## Docker backend tests against a real dockerd (root; started when absent)
	$(NPM) exec -- vitest run --project docker

.PHONY: test-node
test-node: node_modules k8s-bins node-bins storage-bins images ## Pod-backend tests on a real node: kubelet, containerd, CNI, kube-proxy, kube-router (root)
	$(NPM) exec -- vitest run --project node

.PHONY: test-kind
test-kind: node_modules k8s-bins node-bins images ## The kind loop from parts built here: kind, a local node image, kind-up deploy demo kind-down where the host can (root)
	$(NPM) exec -- vitest run --project kind

.PHONY: test
test: deps lint typecheck crds-check build images-smoke test-agent test-egress-go ## Everything CI runs: lint, typecheck, CRD drift, image smoke tests, all tests
	$(NPM) exec -- vitest run
