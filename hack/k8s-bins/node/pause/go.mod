module sandboxing.dev/hack/k8s-bins/node/pause

go 1.24.0
