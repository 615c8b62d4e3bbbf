# The kind dev loop: a local cluster, the same image and chart the tests use.
# Needs docker, kind (>= v0.24) and helm on PATH; it cannot run where no
# registry is reachable (kind pulls its node image).
KIND ?= kind
KIND_CLUSTER ?= sandbox-operator
IMAGE ?= sandbox-operator:$(shell node -p "require('./package.json').version")
HELM ?= helm

.PHONY: kind-up
kind-up: ## Create the kind cluster (kind/cluster.yaml)
	$(KIND) create cluster --config kind/cluster.yaml --name $(KIND_CLUSTER)

.PHONY: image
image: ## Build the operator image (docker build, FROM node:20-bookworm-slim)
	docker build -t $(IMAGE) .

.PHONY: kind-load
kind-load: image ## Load the operator image into the kind cluster
	$(KIND) load docker-image $(IMAGE) --name $(KIND_CLUSTER)

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
	kubectl apply -f examples/hello.yaml
	kubectl wait --for=jsonpath='{.status.phase}'=Succeeded sandbox/hello --timeout=120s
	kubectl get sandbox hello
	kubectl logs hello -c sandbox

.PHONY: kind-down
kind-down: ## Delete the kind cluster
	$(KIND) delete cluster --name $(KIND_CLUSTER)
