# The kind dev loop: a local cluster, the same image and chart the tests use.
# Nothing is pulled from a registry: kind is built from the Go module proxy
# (hack/kind/build.sh, pinned in hack/kind/go.mod) and the node image is built
# here (hack/kind/node-image.sh: the local Debian base, Debian's containerd,
# runc and CNI plugins, kubelet/kubeadm built like the test node's). Set
# KIND_NODE_IMAGE=kindest/node:<tag> and KIND_CONFIG=kind/cluster.yaml to use
# upstream's image (two nodes, kindnet) where a registry is reachable.
KIND ?= $(shell bash hack/kind/build.sh)/kind
KIND_NODE_IMAGE ?= $(shell bash hack/kind/node-image.sh)
KIND_CONFIG ?= kind/cluster-local.yaml
KIND_CLUSTER ?= sandbox-operator
IMAGE ?= sandbox-operator:$(shell node -p "require('./package.json').version")
HELM ?= $(shell bash hack/k8s-bins/build.sh)/helm
KUBECTL ?= $(shell bash hack/k8s-bins/build.sh)/kubectl
# The image hello runs: python:3.12-slim cannot be pulled here, so the local
# sandbox-basic image (loaded by kind-load; not :latest, which the kubelet
# would always try to pull) stands in. DEMO_IMAGE= keeps the example's own.
DEMO_IMAGE ?= sandbox-operator/sandbox-basic:local

.PHONY: kind-up
kind-up: ## Create the kind cluster on the locally built node image (KIND_CONFIG)
	$(KIND) create cluster --config $(KIND_CONFIG) --name $(KIND_CLUSTER) --image $(KIND_NODE_IMAGE)

.PHONY: image
image: ## Build the operator image (docker build, FROM node:20-bookworm-slim)
	docker build -t $(IMAGE) .

.PHONY: kind-load
kind-load: images ## Load the operator and sandbox-basic images (built locally) into the kind cluster
	docker tag sandbox-operator/sandbox-basic:latest sandbox-operator/sandbox-basic:local
	$(KIND) load docker-image $(IMAGE) sandbox-operator/sandbox-basic:local --name $(KIND_CLUSTER)

.PHONY: deploy
deploy: kind-load ## helm upgrade --install the chart with that image
	$(HELM) upgrade --install sandbox-operator charts/sandbox-operator \
	  --namespace sandbox-system --create-namespace \
	  --set image.repository=$(firstword $(subst :, ,$(IMAGE))) \
	  --set image.tag=$(lastword $(subst :, ,$(IMAGE))) \
	  --set image.pullPolicy=Never \
	  --wait

.PHONY: demo
demo: ## Apply examples/hello.yaml and watch it run
	$(if $(DEMO_IMAGE),sed 's|^  image: .*|  image: $(DEMO_IMAGE)|',cat) examples/hello.yaml | $(KUBECTL) apply -f -
	$(KUBECTL) wait --for=jsonpath='{.status.phase}'=Succeeded sandbox/hello --timeout=180s
	$(KUBECTL) get sandbox hello
	$(KUBECTL) logs hello -c sandbox

.PHONY: kind-down
kind-down: ## Delete the kind cluster
	$(KIND) delete cluster --name $(KIND_CLUSTER)
