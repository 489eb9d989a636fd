//go:build tools

// Package tools pins the versions of the real components the tests run
// product's go.mod stays free of them. `make tools` builds them into a cache.
package tools

import (
	_ "github.com/prometheus/alertmanager/cmd/alertmanager"
	_ "github.com/prometheus/alertmanager/cmd/amtool"
)
