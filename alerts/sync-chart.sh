#!/usr/bin/env bash
# Copies alerts/*.rules.yaml into the helm chart (charts/failoverd/rules),
# which renders them as a PrometheusRule (values validatorRules.enabled).
# helm reads only files inside the chart, hence the copy; alerts_test.go
# fails while the two differ. Run it after every change to a rule file, then
# refresh the chart's golden files, which contain the rendered rules:
#   alerts/sync-chart.sh
#   FAILOVERD_TOOLS_BIN=$(tools/build.sh) go test ./charts/ -run Golden -update
#   git add charts/failoverd/rules charts/testdata/golden
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dst="$here/../charts/failoverd/rules"
mkdir -p "$dst"
rm -f "$dst"/*.rules.yaml
cp "$here"/*.rules.yaml "$dst"/
