//go:build tools

// Package promtool pins Prometheus v0.315.0 (Prometheus 3.x) so the alert
// rule tests (alerts/) run the real `promtool check rules` and `promtool test
// rules`. A module of its own: Prometheus' dependencies would move
// Alertmanager's and helm's in the other tool modules, and `go install
// ...@version` refuses it because its go.mod has replace directives.
package promtool

import (
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
