#!/usr/bin/env bash
# Builds the pinned real components the tests run (Alertmanager, amtool) into
# a cache directory, once: a later run with the same tools/go.mod and go.sum
# finds them there and does nothing. Prints the bin directory on stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${FAILOVERD_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/failoverd/tools}
bin="$dir/bin"
stamp=$(cat "$root/tools/go.mod" "$root/tools/go.sum" | sha256sum | cut -c1-16)
if [ -f "$bin/.stamp" ] && [ "$(cat "$bin/.stamp")" = "$stamp" ] && [ -x "$bin/alertmanager" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$bin"
echo "building pinned test tools into $bin (first run only, ~1 minute)" >&2
cd "$root/tools"
go build -o "$bin/" \
  github.com/prometheus/alertmanager/cmd/alertmanager \
  github.com/prometheus/alertmanager/cmd/amtool
echo "$stamp" > "$bin/.stamp"
echo "$bin"
