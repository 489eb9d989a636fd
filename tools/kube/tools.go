//go:build tools

// Package kube pins kube-apiserver v1.31.0 for the Kubernetes tests
// (failover/kube/kubetest). tools/build.sh builds it into the tools cache with
// the component-base version set by -ldflags, so it reports v1.31.0.
package kube

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
