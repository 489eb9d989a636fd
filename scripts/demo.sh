#!/usr/bin/env bash
# A guided walk through one outage on the embedded default (bbolt store,
# simulated cloud): the real Alertmanager sample arrives, the incident goes
# confirming → provisioning → syncing → ready; the resolve takes it to
# recovering → closed. Everything runs on 127.0.0.1 in a temporary directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin/failoverd"
port=${DEMO_PORT:-19097}
server="http://127.0.0.1:$port"
work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

bold=$(tput bold 2>/dev/null || true)
plain=$(tput sgr0 2>/dev/null || true)
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
fail() { echo "demo: $*" >&2; echo "--- failoverd log ---" >&2; cat "$work/failoverd.log" >&2; exit 1; }

"$root/scripts/tokens.sh" "$work/data"
webhook_token=$(cat "$work/data/webhook.token")
export FAILOVERD_API_TOKEN
FAILOVERD_API_TOKEN=$(cat "$work/data/api.token")
export FAILOVERD_SERVER="$server"

step "1. Start failoverd: bbolt store in a temp dir, simulated cloud, config examples/local.yaml"
echo "   (confirmFor 5s, sim boot 3s + sync 6s, keepWarm 10s: a real outage takes minutes, the demo seconds)"
FAILOVERD_WEBHOOK_TOKEN="$webhook_token" "$bin" serve --config "$root/examples/local.yaml" \
  --listen "127.0.0.1:$port" --data-dir "$work/data" >"$work/failoverd.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$server/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || fail "failoverd exited"
  sleep 0.1
done
curl -fsS "$server/readyz" >/dev/null || fail "failoverd did not become ready"
echo "   listening on $server"

sample="$root/failover/alertmanager/testdata"
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
sed "s/\"startsAt\": \"[^\"]*\"/\"startsAt\": \"$now\"/" "$sample/validator-down-firing.json" >"$work/firing.json"

post() {
  curl -sS -H "Authorization: Bearer $webhook_token" -H 'Content-Type: application/json' \
    --data-binary "@$1" "$server/webhook/alertmanager" | tr -d '\n ' ; echo
}

step "2. Alertmanager delivers the real sample: ValidatorClientDown for eth-mainnet-1 (failover=\"true\")"
echo "   reply: $(post "$work/firing.json")"
step "3. Its HA peer delivers the same notification: a duplicate, dropped without a write"
echo "   reply: $(post "$work/firing.json")"

state_of() { "$bin" incidents list --validator eth-mainnet-1 | awk 'NR==2 {print $4}'; }
id_of() { "$bin" incidents list --validator eth-mainnet-1 | awk 'NR==2 {print $1}'; }
watch_until() {
  local want=$1 last="" s
  for _ in $(seq 1 600); do
    s=$(state_of)
    if [ "$s" != "$last" ]; then
      printf '   %s  %-13s %s\n' "$(date -u +%T)" "$s" \
        "$("$bin" incidents show "$(id_of)" -o json | sed -n 's/^  "reason": "\(.*\)",$/\1/p')"
      last=$s
    fi
    [ "$s" = "$want" ] && return 0
    sleep 0.2
  done
  fail "incident did not reach $want"
}

step "4. Watch the incident: hold-down, then a standby in the (simulated) cloud, syncing, ready"
watch_until ready
id=$(id_of)
echo
"$bin" incidents show "$id"

step "5. The validator is back: Alertmanager delivers the resolve"
end=$(date -u +%Y-%m-%dT%H:%M:%SZ)
sed -e "s/\"startsAt\": \"[^\"]*\"/\"startsAt\": \"$now\"/" -e "s/\"endsAt\": \"[^\"]*\"/\"endsAt\": \"$end\"/" \
  "$sample/validator-down-resolved.json" >"$work/resolved.json"
echo "   reply: $(post "$work/resolved.json")"

step "6. The standby is kept warm in case the alert flaps, then deleted"
watch_until closed
echo
"$bin" incidents show "$id"

step "Done. Try it yourself: 'make run', then 'failoverd incidents list' (see README.md)."
