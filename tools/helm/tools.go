//go:build tools

// Package helm pins helm v3.22.0 for the chart tests (charts/). A separate
// module from tools/go.mod because helm's dependencies would upgrade
// Alertmanager's (client_golang, prometheus/common, otel) there.
package helm

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
