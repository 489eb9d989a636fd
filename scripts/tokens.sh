#!/usr/bin/env bash
# Creates random webhook and API tokens in a data directory if they are not
# there yet (mode 0600), for `make run` and the demo.
set -euo pipefail
dir=${1:?usage: tokens.sh DATA_DIR}
mkdir -p "$dir"
chmod 700 "$dir"
for name in webhook api; do
  f="$dir/$name.token"
  if [ ! -s "$f" ]; then
    (umask 077 && head -c 32 /dev/urandom | base64 | tr -d '/+=\n' > "$f")
  fi
done
