# Local Docker engine and images, built without any container registry.
# Included by the main Makefile (`include hack/images/images.mk`); uses no
# variables of its own that it does not define here.

.PHONY: dockerd
dockerd: ## Start a local Docker engine (installs docker.io if missing); prints DOCKER_HOST
	@bash hack/docker/ensure-dockerd.sh

.PHONY: images
images: ## Build debian-base, node, sandbox-basic and operator images locally (cached)
	@bash hack/images/build-all.sh

.PHONY: images-smoke
images-smoke: images ## Build the images, then smoke-test them (tools work, users non-root)
	@bash images/smoke-test.sh
