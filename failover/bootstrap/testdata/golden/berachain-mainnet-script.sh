#!/bin/bash
# failoverd standby bootstrap: validator berachain-mainnet-1, berachain/mainnet.
# Runs bera-reth (execution) and beacond (beacon node) in Docker, and
# the failoverd standby agent. It writes no validator key, no signing history
# and never a copy of a home signing key: keys arrive only through the agent,
# after a person's approval, and every signer here starts through
# /usr/local/sbin/failoverd-gate, which fails closed.
# beacond's CometBFT key is a throwaway made here until the agent asks
# failoverd-cometbft-key.path to install the validator's.
# Idempotent: running it again changes nothing.
# GCP runs it as the startup-script on every boot.
# beacond (CometBFT) has no checkpoint sync: it syncs from genesis, or from
# the chain data already on the disk (a warm snapshot).
set -euo pipefail
umask 022
export DEBIAN_FRONTEND=noninteractive
D=/var/lib/failoverd-chain
CHANGED=" "
log() { echo "failoverd-bootstrap: $*"; }
# put PATH MODE: install stdin at PATH unless it is there already, identical.
put() {
  local t
  t=$(mktemp)
  cat >"$t"
  if [ -f "$1" ] && cmp -s "$t" "$1" && [ "$(stat -c %a "$1")" = "${2#0}" ]; then
    rm -f "$t"
    return 0
  fi
  install -D -m "$2" "$t" "$1"
  rm -f "$t"
  CHANGED="$CHANGED$1 "
}
# changed PATH...: did put change any of them in this run?
changed() {
  local p
  for p in "$@"; do
    case "$CHANGED" in *" $p "*) return 0 ;; esac
  done
  return 1
}

put /etc/failoverd/ca.crt 0644 <<'FAILOVERD_EOF'
-----BEGIN CERTIFICATE-----
MIIBRDCB96ADAgECAgEBMAUGAytlcDApMScwJQYDVQQDEx5mYWtlIGZhaWxvdmVy
ZCBDQSAodGVzdHMgb25seSkwIBcNMjUwMTAxMDAwMDAwWhgPMjEyNTAxMDEwMDAw
MDBaMCkxJzAlBgNVBAMTHmZha2UgZmFpbG92ZXJkIENBICh0ZXN0cyBvbmx5KTAq
MAUGAytlcAMhADtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdopo0IwQDAO
BgNVHQ8BAf8EBAMCAgQwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUE545QOZL
VJFyIIjZoNdBYo/IJuAwBQYDK2VwA0EABKTEEOqhW4pxUAHoisfUcVYZIZZjPXHw
S4C///uTsBSxOXApLGNw43ohVkNgR9OyO4NBLk6GC1rDMcFboYaPBA==
-----END CERTIFICATE-----
FAILOVERD_EOF
put /etc/failoverd/agent.crt 0644 <<'FAILOVERD_EOF'
-----BEGIN CERTIFICATE-----
MIIBZTCCARegAwIBAgIBAjAFBgMrZXAwKTEnMCUGA1UEAxMeZmFrZSBmYWlsb3Zl
cmQgQ0EgKHRlc3RzIG9ubHkpMB4XDTI1MDEwMTAwMDAwMFoXDTI2MDEwMTAwMDAw
MFowKDEmMCQGA1UEAxMdZm8tZXRoLW1haW5uZXQtMSAodGVzdHMgb25seSkwKjAF
BgMrZXADIQDOzBUH3B3dcpWVHCkIiPCVrbkETRtz1pbm3wZdaDvU/KNlMGMwDgYD
VR0PAQH/BAQDAgeAMBMGA1UdJQQMMAoGCCsGAQUFBwMBMB8GA1UdIwQYMBaAFBOe
OUDmS1SRciCI2aDXQWKPyCbgMBsGA1UdEQQUMBKCEGZvLWV0aC1tYWlubmV0LTEw
BQYDK2VwA0EAc7k9uX+tUELFqAtwQT54sdLZ+sHQc50Nb8lOjVAnsmNB/LF96aI6
yRRhkgPAITWyc+iVAtoQVkeK4yWScoqwAg==
-----END CERTIFICATE-----
FAILOVERD_EOF
put /etc/failoverd/agent.key 0640 <<'FAILOVERD_EOF'
-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
-----END PRIVATE KEY-----
FAILOVERD_EOF
put /etc/failoverd/allowed_signers 0644 <<'FAILOVERD_EOF'
alice@example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH/z/rNeqaYQXUbl3lH8amt8NkslkAWcbfHixCe+BlS1
bob@example.org namespaces="failoverd-approval" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC1tyM/VvahBCT5ClmcObhE/eBJP0XyJ9hRe9q2nvMLn
FAILOVERD_EOF
put /usr/local/sbin/failoverd-gate 0755 <<'FAILOVERD_EOF'
#!/bin/bash
# failoverd gate: the first ExecStartPre of failoverd-beacon.service on standby
# berachain-mainnet-1. Exit 0 lets systemd start it; any other exit keeps it
# stopped. It fails closed: a file it cannot read or parse keeps it shut.
#
# The agent writes /var/lib/failoverd-agent/validator-start (the ownership generation) only after
# it has checked a person's signed approval and failoverd's signed grant for
# this standby, right before it hands keys over; it removes the file on a
# fence or a failed import. failoverd itself is not asked from here: the
# standby has no credentials for failoverd's API, and the grant the agent
# checked is failoverd's answer.
set -u
control=/var/lib/failoverd-agent
home=/var/lib/failoverd-chain/beacond
say() { echo "failoverd-gate: $*" >&2; }
# generation FILE: the positive whole number in FILE, or fail.
generation() {
  local g
  if [ ! -f "$1" ] || [ -L "$1" ]; then return 1; fi
  g=$(tr -d ' \n' <"$1") || return 1
  case "$g" in '' | 0* | *[!0-9]*) return 1 ;; esac
  echo "$g"
}
owner=""
if [ -e "$control/validator-start" ] && ! owner=$(generation "$control/validator-start"); then
  say "closed: $control/validator-start holds no generation"
  exit 1
fi
# beacond always runs: with the throwaway key made on this VM it is not a
# validator. Once the validator's key is installed ($home/validator-key
# names the generation it was installed for, written before the key), it may
# start only while this standby owns the signing right at that generation.
if [ ! -e "$home/validator-key" ]; then
  say "open: beacond holds this VM's throwaway key, which is no validator's"
  exit 0
fi
if ! installed=$(generation "$home/validator-key"); then
  say "closed: $home/validator-key holds no generation"
  exit 1
fi
if [ "$owner" = "$installed" ]; then
  say "open: this standby owns the signing right (generation $owner)"
  exit 0
fi
say "closed: beacond holds the validator key installed for generation $installed, and this standby owns ${owner:-nothing} (no $control/validator-start, or another generation)"
exit 1
FAILOVERD_EOF
put /etc/systemd/system/failoverd-execution.service 0644 <<'FAILOVERD_EOF'
[Unit]
Description=failoverd standby: bera-reth (execution client)
Wants=network-online.target
After=network-online.target docker.service
Requires=docker.service
RequiresMountsFor=/var/lib/failoverd-chain

[Service]
EnvironmentFile=/etc/failoverd/execution.env
ExecStartPre=-/usr/bin/docker rm -f failoverd-execution
ExecStart=/usr/bin/docker run --rm --name failoverd-execution --network host --log-driver journald \
  -v /var/lib/failoverd-chain:/data \
  --entrypoint bera-reth ghcr.io/berachain/bera-reth:v1.3.0 \
  node \
  --chain /data/seed/eth-genesis.json \
  --datadir /data/execution \
  --port 30303 \
  --authrpc.addr 127.0.0.1 \
  --authrpc.port 8551 \
  --authrpc.jwtsecret /data/jwt.hex \
  --http \
  --http.addr 127.0.0.1 \
  --http.port 8545 \
  --http.api eth,net \
  --metrics 127.0.0.1:6060 \
  $EL_PEER_ARGS
ExecStop=/usr/bin/docker stop -t 180 failoverd-execution
Restart=always
RestartSec=10
TimeoutStopSec=210

[Install]
WantedBy=multi-user.target
FAILOVERD_EOF
put /etc/systemd/system/failoverd-beacon.service 0644 <<'FAILOVERD_EOF'
[Unit]
Description=failoverd standby: beacond (a validator only once the agent installs its key)
Wants=network-online.target
After=network-online.target docker.service failoverd-execution.service
Requires=docker.service
RequiresMountsFor=/var/lib/failoverd-chain

[Service]
# A signer: the gate runs first and fails closed; nothing below runs unless it exits 0.
ExecStartPre=/usr/local/sbin/failoverd-gate
ExecStartPre=-/usr/bin/docker rm -f failoverd-beacon
ExecStart=/usr/bin/docker run --rm --name failoverd-beacon --network host --log-driver journald \
  -v /var/lib/failoverd-chain:/data \
  --entrypoint beacond ghcr.io/berachain/beacon-kit:v1.3.4 \
  start \
  --home /data/beacond
ExecStop=/usr/bin/docker stop -t 180 failoverd-beacon
Restart=always
RestartSec=10
TimeoutStopSec=210

[Install]
WantedBy=multi-user.target
FAILOVERD_EOF
put /etc/systemd/system/failoverd-agent.service 0644 <<'FAILOVERD_EOF'
[Unit]
Description=failoverd standby agent (status and key import over mutual TLS)
Wants=network-online.target
After=network-online.target docker.service
Requires=docker.service
RequiresMountsFor=/var/lib/failoverd-chain

[Service]
ExecStartPre=-/usr/bin/docker rm -f failoverd-agent
ExecStart=/usr/bin/docker run --rm --name failoverd-agent --network host --log-driver journald --user 65532:65532 \
  -v /etc/failoverd:/etc/failoverd:ro \
  -v /var/lib/failoverd-chain:/var/lib/failoverd-chain:ro \
  -v /var/lib/failoverd-agent:/var/lib/failoverd-agent \
  --entrypoint failoverd ghcr.io/failoverd/failoverd:v0.4.0 \
  agent \
  --listen 0.0.0.0:7443 \
  --tls-cert /etc/failoverd/agent.crt \
  --tls-key /etc/failoverd/agent.key \
  --client-ca /etc/failoverd/ca.crt \
  --execution-url http://127.0.0.1:8545 \
  --beacon-url http://127.0.0.1:5052 \
  --data-path /var/lib/failoverd-chain \
  --control-dir /var/lib/failoverd-agent \
  --chain berachain \
  --allowed-signers /etc/failoverd/allowed_signers \
  --approval-threshold 2 \
  --cometbft-dir /var/lib/failoverd-agent/cometbft \
  --cometbft-chain-id mainnet-beacon-80094 \
  --state-dir /var/lib/failoverd-agent/state \
  --silent-blocks 150
ExecStop=/usr/bin/docker stop -t 10 failoverd-agent
Restart=always
RestartSec=10
TimeoutStopSec=40

[Install]
WantedBy=multi-user.target
FAILOVERD_EOF
put /etc/systemd/system/failoverd-stop-clients.path 0644 <<'FAILOVERD_EOF'
[Unit]
Description=failoverd: stop the clients cleanly when the agent asks (snapshot keeper)

[Path]
PathExists=/var/lib/failoverd-agent/stop-requested

[Install]
WantedBy=multi-user.target
FAILOVERD_EOF
put /etc/systemd/system/failoverd-stop-clients.service 0644 <<'FAILOVERD_EOF'
[Unit]
Description=failoverd: stop the clients cleanly so the data disk can be snapshotted

[Service]
Type=oneshot
ExecStart=/bin/systemctl stop failoverd-beacon.service failoverd-execution.service
ExecStart=/bin/sync
ExecStart=/usr/bin/touch /var/lib/failoverd-agent/clients-stopped
FAILOVERD_EOF
put /usr/local/sbin/failoverd-cometbft-key 0755 <<'FAILOVERD_EOF'
#!/bin/bash
# failoverd: install or remove Berachain validator berachain-mainnet-1's CometBFT
# key on this standby when the agent asks (failoverd-cometbft-key.path). The
# agent can touch neither beacond nor systemd; it stages files in $stage:
#   install-requested   the generation, written last, after
#                       priv_validator_key.json and priv_validator_state.json;
#   remove-requested    the generation: beacond goes back to a throwaway key,
#                       and its last priv_validator_state.json is left in
#                       $stage/returned_priv_validator_state.json.
# The answer is $stage/result: "installed G", "removed G", "refused G: why"
# or "failed G: why". On a failure beacond is left stopped for a person.
# -E: the ERR trap also fires inside functions, so every failure answers and
# clears the request (else the path unit would run this again and again).
set -Eeuo pipefail
umask 077
control=/var/lib/failoverd-agent
stage=/var/lib/failoverd-agent/cometbft
chain=/var/lib/failoverd-chain
home=$chain/beacond
agent_uid=65532
gen=unknown
answer() {
  printf '%s\n' "$1" >"$stage/result.new"
  chown "$agent_uid:$agent_uid" "$stage/result.new"
  mv -f "$stage/result.new" "$stage/result"
  echo "failoverd-cometbft-key: $1"
}
forget() {
  rm -f "$stage/install-requested" "$stage/remove-requested" "$stage/priv_validator_key.json" "$stage/priv_validator_state.json"
}
trap 'forget; answer "failed $gen: step at line $LINENO; beacond left stopped (journalctl -u failoverd-cometbft-key)"' ERR
generation() {
  local g
  if [ ! -f "$1" ] || [ -L "$1" ]; then return 1; fi
  g=$(tr -d ' \n' <"$1") || return 1
  case "$g" in '' | 0* | *[!0-9]*) return 1 ;; esac
  echo "$g"
}
refuse() {
  forget
  answer "refused $gen: $1"
  exit 1
}
# builder true|false: beacond builds payloads only as a validator.
builder() {
  sed -i "/^\[beacon-kit.payload-builder\]/,/^\[/s|^enabled = .*|enabled = $1|" "$home/config/app.toml"
}
# swap SRC DST: DST becomes a 0600 copy of SRC in one rename (-T: never
# into a directory that happens to be in the way).
swap() {
  install -T -m 0600 "$1" "$2.new"
  mv -f "$2.new" "$2"
}

if [ -e "$stage/remove-requested" ]; then
  # Removal wins over an install: it is the safe direction.
  gen=$(generation "$stage/remove-requested") || gen=unknown
  if [ ! -e "$home/validator-key" ]; then
    forget
    answer "removed $gen"
    exit 0
  fi
  systemctl stop failoverd-beacon.service
  if [ -f "$home/data/priv_validator_state.json" ]; then
    install -m 0600 -o "$agent_uid" -g "$agent_uid" "$home/data/priv_validator_state.json" "$stage/returned_priv_validator_state.json"
  fi
  rm -rf "$chain/keygen"
  docker run --rm -v "$chain:/data" --entrypoint beacond ghcr.io/berachain/beacon-kit:v1.3.4 \
    init failoverd-standby --chain-id 80094 --beacon-kit.chain-spec mainnet --home /data/keygen
  swap "$chain/keygen/config/priv_validator_key.json" "$home/config/priv_validator_key.json"
  rm -rf "$chain/keygen"
  builder false
  # The marker goes last: until the throwaway is in place the gate stays shut.
  rm -f "$home/validator-key"
  forget
  answer "removed $gen"
  systemctl start failoverd-beacon.service || echo "failoverd-cometbft-key: beacond did not start; its unit tries again"
  exit 0
fi

[ -e "$stage/install-requested" ] || exit 0
if ! gen=$(generation "$stage/install-requested"); then
  gen=unknown
  refuse "install-requested holds no generation"
fi
owner=$(generation "$control/validator-start") || refuse "this standby does not own the signing right (no $control/validator-start)"
[ "$owner" = "$gen" ] || refuse "this standby owns generation $owner, not $gen"
for f in priv_validator_key.json priv_validator_state.json; do
  if [ ! -f "$stage/$f" ] || [ -L "$stage/$f" ]; then refuse "no $stage/$f"; fi
done
grep -q '"priv_key"' "$stage/priv_validator_key.json" || refuse "priv_validator_key.json holds no priv_key"
grep -q '"height"' "$stage/priv_validator_state.json" || refuse "priv_validator_state.json holds no height"
# The key goes where CometBFT's defaults put it; a config.toml that moves it
# is refused rather than guessed.
for k in 'priv_validator_key_file = "config/priv_validator_key.json"' 'priv_validator_state_file = "data/priv_validator_state.json"'; do
  if grep -q "^${k%% =*} = " "$home/config/config.toml" && ! grep -qxF "$k" "$home/config/config.toml"; then
    refuse "$home/config/config.toml moves ${k%% =*}"
  fi
done
systemctl stop failoverd-beacon.service
# The marker goes first: from here on the gate opens beacond only for this
# generation's owner.
echo "$gen" >"$home/validator-key"
mkdir -p "$home/data"
swap "$stage/priv_validator_state.json" "$home/data/priv_validator_state.json"
swap "$stage/priv_validator_key.json" "$home/config/priv_validator_key.json"
builder true
sed -i '/^\[beacon-kit.payload-builder\]/,/^\[/s|^suggested-fee-recipient = .*|suggested-fee-recipient = "0x00000000219ab540356cBB839Cbe05303d7705Fa"|' "$home/config/app.toml"
forget
answer "installed $gen"
# double_sign_check_height makes beacond refuse to start while the key still
# appears in the last blocks; Restart=always tries again.
systemctl start failoverd-beacon.service || echo "failoverd-cometbft-key: beacond did not start yet; its unit tries again"
FAILOVERD_EOF
put /etc/systemd/system/failoverd-cometbft-key.path 0644 <<'FAILOVERD_EOF'
[Unit]
Description=failoverd: install or remove the validator's CometBFT key when the agent asks

[Path]
PathExists=/var/lib/failoverd-agent/cometbft/install-requested
PathExists=/var/lib/failoverd-agent/cometbft/remove-requested

[Install]
WantedBy=multi-user.target
FAILOVERD_EOF
put /etc/systemd/system/failoverd-cometbft-key.service 0644 <<'FAILOVERD_EOF'
[Unit]
Description=failoverd: install or remove the validator's CometBFT key (restarts beacond)
After=docker.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/failoverd-cometbft-key
FAILOVERD_EOF

# 1. Docker from the distribution (docker.io on Debian/Ubuntu: no third-party
#    repository), curl, nvme-cli (finds the EBS data volume), openssl (JWT).
missing=()
for p in docker.io curl nvme-cli openssl; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
systemctl enable -q --now docker

# 2. The data disk (gcp:data): formatted only when it holds nothing at
#    all (never reformatted), mounted at $D by label.
find_disk() {
  local d n found="" root
  d=/dev/disk/by-id/google-data
  if [ -b "$d" ]; then readlink -f "$d"; return 0; fi
  # Fallback: the only unpartitioned, unmounted disk besides the root disk.
  root=$(lsblk -no PKNAME "$(findmnt -no SOURCE /)" 2>/dev/null || true)
  while read -r d n; do
    if [ "$n" != disk ] || [ "${d##*/}" = "$root" ]; then continue; fi
    [ "$(lsblk -no NAME "$d" | wc -l)" -eq 1 ] || continue
    if findmnt -rn -S "$d" >/dev/null; then continue; fi
    [ -z "$found" ] || return 1
    found=$d
  done < <(lsblk -dnpo NAME,TYPE)
  [ -n "$found" ] && echo "$found"
}
if ! mountpoint -q "$D"; then
  dev=""
  for _ in $(seq 60); do
    if dev=$(find_disk); then break; fi
    sleep 2
  done
  if [ -z "$dev" ]; then
    log "no data disk found for gcp:data; refusing to guess"
    exit 1
  fi
  fs=$(blkid -p -o value -s TYPE "$dev" || true)
  pt=$(blkid -p -o value -s PTTYPE "$dev" || true)
  if [ -z "$fs" ] && [ -z "$pt" ]; then
    log "formatting empty disk $dev (ext4, label failoverd-data)"
    mkfs.ext4 -q -L failoverd-data -E nodiscard "$dev"
  elif [ "$fs" != ext4 ]; then
    log "$dev holds ${fs:-a partition table}, not ext4: not touching it"
    exit 1
  elif [ "$(blkid -p -o value -s LABEL "$dev" || true)" != failoverd-data ]; then
    e2label "$dev" failoverd-data
  fi
  udevadm settle || true
fi
if ! grep -q '^LABEL=failoverd-data ' /etc/fstab; then
  echo "LABEL=failoverd-data $D ext4 defaults,noatime,nofail,x-systemd.device-timeout=60s 0 2" >>/etc/fstab
  systemctl daemon-reload
fi
mkdir -p "$D"
mountpoint -q "$D" || mount "$D"
# The agent's container runs as uid 65532: it writes its control and
# state files here (on the boot disk: a snapshot never carries them).
install -d -o 65532 -g 65532 -m 0755 /var/lib/failoverd-agent
install -d -o 65532 -g 65532 -m 0700 /var/lib/failoverd-agent/cometbft
chgrp 65532 /etc/failoverd/agent.key

# 3. The Engine API JWT, made on this VM, only when absent.
if [ ! -s "$D/jwt.hex" ]; then
  (umask 077 && openssl rand -hex 32 >"$D/jwt.hex.new")
  mv "$D/jwt.hex.new" "$D/jwt.hex"
fi
chmod 0600 "$D/jwt.hex"

# 4. Berachain mainnet (chain ID 80094, beacon-kit chain spec mainnet).
#    Network files: beacon-kit's testing/networks/80094, as Berachain's
#    node quickstart fetches them (main branch: not pinned to the version).
# bcd_init HOME: beacond init, which makes a NEW node key pair in HOME.
bcd_init() {
  docker run --rm -v "$D:/data" --entrypoint beacond ghcr.io/berachain/beacon-kit:v1.3.4 \
    init failoverd-standby --chain-id 80094 --beacon-kit.chain-spec mainnet --home "/data/$1"
}
if [ ! -d "$D/seed" ]; then
  rm -rf "$D/seed.new"
  mkdir -p "$D/seed.new"
  for f in genesis.json kzg-trusted-setup.json app.toml config.toml eth-genesis.json el-bootnodes.txt; do
    curl -fsSL --retry 5 -o "$D/seed.new/$f" "https://raw.githubusercontent.com/berachain/beacon-kit/main/testing/networks/80094/$f"
  done
  mv "$D/seed.new" "$D/seed"
fi
peers=$(grep -h '^enode://' "$D/seed/el-bootnodes.txt" | paste -sd, - || true)
echo "EL_PEER_ARGS=${peers:+--bootnodes=$peers}" | put /etc/failoverd/execution.env 0644
# beacond always has a priv_validator_key.json. The standby's is a THROWAWAY
# made by beacond init on this VM (no stake, never signs); the home
# validator's key is never copied here. A disk restored from a snapshot
# carries another VM's key: it is replaced by one made here.
vm=$(cat /sys/class/dmi/id/product_uuid 2>/dev/null || hostname)
if [ ! -d "$D/beacond" ]; then
  rm -rf "$D/beacond.new"
  bcd_init beacond.new
  for f in genesis.json kzg-trusted-setup.json app.toml config.toml; do
    cp "$D/seed/$f" "$D/beacond.new/config/$f"
  done
  # Engine API on localhost, no block building (not a validator), the
  # beacon node API on 127.0.0.1:5052 for the agent, metrics on localhost.
  sed -i -e 's|^rpc-dial-url = .*|rpc-dial-url = "http://127.0.0.1:8551"|' \
    -e 's|^jwt-secret-path = .*|jwt-secret-path = "/data/jwt.hex"|' \
    -e 's|^trusted-setup-path = .*|trusted-setup-path = "/data/beacond/config/kzg-trusted-setup.json"|' \
    -e '/^\[beacon-kit.payload-builder\]/,/^\[/s|^enabled = .*|enabled = false|' \
    -e '/^\[beacon-kit.node-api\]/,/^\[/{s|^enabled = .*|enabled = true|;s|^address = .*|address = "127.0.0.1:5052"|}' \
    "$D/beacond.new/config/app.toml"
  sed -i -e 's|^moniker = .*|moniker = "failoverd-standby"|' \
    -e '/^\[rpc\]/,/^\[/s|^laddr = .*|laddr = "tcp://127.0.0.1:26657"|' \
    -e 's|^prometheus = .*|prometheus = true|' \
    -e 's|^prometheus_listen_addr = .*|prometheus_listen_addr = "127.0.0.1:26660"|' \
    "$D/beacond.new/config/config.toml"
  echo "$vm" >"$D/beacond.new/keys-made-on"
  mv "$D/beacond.new" "$D/beacond"
fi
if [ "$(cat "$D/beacond/keys-made-on" 2>/dev/null || true)" != "$vm" ]; then
  log "replacing the restored disk's node keys with throwaway keys made on this VM"
  rm -rf "$D/keygen"
  bcd_init keygen
  install -m 0600 "$D/keygen/config/priv_validator_key.json" "$D/keygen/config/node_key.json" "$D/beacond/config/"
  rm -rf "$D/keygen"
  # Whatever key that disk's VM was given, this one holds a throwaway.
  rm -f "$D/beacond/validator-key"
  echo "$vm" >"$D/beacond/keys-made-on"
fi
# On every run (a restored disk keeps an older config.toml): CometBFT
# refuses to start with a key that signed any of the last
# 10 blocks, the last guard against a second signer
# after a key moves here.
C=$D/beacond/config/config.toml
if ! grep -qx 'double_sign_check_height = 10' "$C"; then
  if grep -q '^double_sign_check_height = ' "$C"; then
    sed -i 's|^double_sign_check_height = .*|double_sign_check_height = 10|' "$C"
  else
    sed -i '/^\[consensus\]/a double_sign_check_height = 10' "$C"
  fi
  if ! grep -qx 'double_sign_check_height = 10' "$C"; then
    log "cannot set double_sign_check_height in $C; not starting beacond"
    exit 1
  fi
  CHANGED="$CHANGED$C "
fi
# The execution client's genesis, once.
if [ ! -d "$D/execution/db" ]; then
  docker run --rm -v "$D:/data" --entrypoint bera-reth ghcr.io/berachain/bera-reth:v1.3.0 init --datadir /data/execution --chain /data/seed/eth-genesis.json
fi

# 5. Start (or keep running) the units; restart one only when its files changed.
#    A signer's gate may refuse it: that is logged, and the rest still runs.
systemctl daemon-reload
systemctl enable -q failoverd-execution.service failoverd-beacon.service failoverd-agent.service failoverd-stop-clients.path failoverd-cometbft-key.path
if changed /etc/systemd/system/failoverd-execution.service /etc/failoverd/execution.env; then systemctl try-restart failoverd-execution.service; fi
if changed /etc/systemd/system/failoverd-beacon.service /var/lib/failoverd-chain/beacond/config/config.toml; then systemctl try-restart failoverd-beacon.service || log "failoverd-beacon.service not restarted: its gate is closed (journalctl -u failoverd-beacon.service)"; fi
if changed /etc/systemd/system/failoverd-agent.service /etc/failoverd/ca.crt /etc/failoverd/agent.crt /etc/failoverd/agent.key /etc/failoverd/allowed_signers; then systemctl try-restart failoverd-agent.service; fi
systemctl start failoverd-execution.service failoverd-agent.service failoverd-stop-clients.path failoverd-cometbft-key.path
systemctl start failoverd-beacon.service || log "failoverd-beacon.service not started: its gate is closed (journalctl -u failoverd-beacon.service)"
log "standby berachain-mainnet-1 bootstrapped"
