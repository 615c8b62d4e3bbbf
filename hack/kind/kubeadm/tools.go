//go:build tools

// Package tools pins kubeadm at the node's Kubernetes version (the kind node image's).
package tools

import _ "k8s.io/kubernetes/cmd/kubeadm"
