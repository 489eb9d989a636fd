#!/bin/bash
# failoverd standby bootstrap: validator ethereum-mainnet-1, ethereum/mainnet.
# Runs geth (execution) and lighthouse (beacon node) in Docker, and
# the failoverd standby agent. It writes no validator key, no signing history
# and never a copy of a home signing key: keys arrive only through the agent,
# after a person's approval, and every signer here starts through
# /usr/local/sbin/failoverd-gate, which fails closed.
# The lighthouse validator client (failoverd-validator.service) runs with no keys
# until the agent imports them through its Keymanager API on 127.0.0.1.
# Idempotent: running it again changes nothing.
# GCP runs it as the startup-script on every boot.
# The beacon node checkpoint-syncs from https://mainnet.checkpoint.sigp.io.
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
# failoverd gate: the first ExecStartPre of failoverd-validator.service on standby
# ethereum-mainnet-1. Exit 0 lets systemd start it; any other exit keeps it
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
vc=/var/lib/failoverd-validator
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
if [ -n "$owner" ]; then
  say "open: this standby owns the signing right (generation $owner)"
  exit 0
fi
# Not the owner. A validator client with no key signs nothing, and it must
# run for the agent to import through its Keymanager API; one that holds a
# key must not start.
defs=$vc/validators/validator_definitions.yml
if [ -e "$defs" ]; then
  grep -q voting_public_key "$defs"
  case $? in
    0)
      say "closed: $defs lists validator keys and this standby does not own the signing right"
      exit 1
      ;;
    1) ;;
    *)
      say "closed: cannot read $defs"
      exit 1
      ;;
  esac
fi
if [ -e "$vc/validators" ]; then
  if ! found=$(find "$vc/validators" -mindepth 1 -maxdepth 1 -name '0x*'); then
    say "closed: cannot list $vc/validators"
    exit 1
  fi
  if [ -n "$found" ]; then
    say "closed: keystores in $vc/validators and this standby does not own the signing right"
    exit 1
  fi
fi
say "open: no validator key on this standby (keys arrive only through the agent, after an approval)"
exit 0
FAILOVERD_EOF
put /etc/systemd/system/failoverd-execution.service 0644 <<'FAILOVERD_EOF'
[Unit]
Description=failoverd standby: geth (execution client)
Wants=network-online.target
After=network-online.target docker.service
Requires=docker.service
RequiresMountsFor=/var/lib/failoverd-chain

[Service]
ExecStartPre=-/usr/bin/docker rm -f failoverd-execution
ExecStart=/usr/bin/docker run --rm --name failoverd-execution --network host --log-driver journald \
  -v /var/lib/failoverd-chain:/data \
  --entrypoint geth ethereum/client-go:v1.16.7 \
  --datadir /data/execution \
  --port 30303 \
  --authrpc.addr 127.0.0.1 \
  --authrpc.port 8551 \
  --authrpc.jwtsecret /data/jwt.hex \
  --http \
  --http.addr 127.0.0.1 \
  --http.port 8545 \
  --http.api eth,net \
  --metrics \
  --metrics.addr 127.0.0.1 \
  --metrics.port 6060
ExecStop=/usr/bin/docker stop -t 180 failoverd-execution
Restart=always
RestartSec=10
TimeoutStopSec=210

[Install]
WantedBy=multi-user.target
FAILOVERD_EOF
put /etc/systemd/system/failoverd-beacon.service 0644 <<'FAILOVERD_EOF'
[Unit]
Description=failoverd standby: lighthouse (beacon node, no validator)
Wants=network-online.target
After=network-online.target docker.service failoverd-execution.service
Requires=docker.service
RequiresMountsFor=/var/lib/failoverd-chain

[Service]
ExecStartPre=-/usr/bin/docker rm -f failoverd-beacon
ExecStart=/usr/bin/docker run --rm --name failoverd-beacon --network host --log-driver journald \
  -v /var/lib/failoverd-chain:/data \
  --entrypoint lighthouse sigp/lighthouse:v8.0.1 \
  bn \
  --network mainnet \
  --datadir /data/consensus \
  --port 9000 \
  --execution-endpoint http://127.0.0.1:8551 \
  --execution-jwt /data/jwt.hex \
  --checkpoint-sync-url https://mainnet.checkpoint.sigp.io \
  --http \
  --http-address 127.0.0.1 \
  --http-port 5052 \
  --metrics \
  --metrics-address 127.0.0.1 \
  --metrics-port 5054
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
Wants=network-online.target failoverd-validator.service
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
  --allowed-signers /etc/failoverd/allowed_signers \
  --approval-threshold 2 \
  --keymanager-url http://127.0.0.1:5062 \
  --keymanager-token-file /etc/failoverd/keymanager/api-token.txt \
  --state-dir /var/lib/failoverd-agent/state \
  --silent-epochs 4
ExecStop=/usr/bin/docker stop -t 10 failoverd-agent
Restart=always
RestartSec=10
TimeoutStopSec=40

[Install]
WantedBy=multi-user.target
FAILOVERD_EOF
put /etc/systemd/system/failoverd-validator.service 0644 <<'FAILOVERD_EOF'
[Unit]
Description=failoverd standby: lighthouse validator client (starts only through the gate)
Wants=network-online.target
After=network-online.target docker.service failoverd-beacon.service
Requires=docker.service
RequiresMountsFor=/var/lib/failoverd-chain

[Service]
# A signer: the gate runs first and fails closed; nothing below runs unless it exits 0.
ExecStartPre=/usr/local/sbin/failoverd-gate
ExecStartPre=-/usr/bin/docker rm -f failoverd-validator
ExecStart=/usr/bin/docker run --rm --name failoverd-validator --network host --log-driver journald \
  -v /var/lib/failoverd-validator:/var/lib/failoverd-validator \
  -v /etc/failoverd/keymanager:/etc/failoverd/keymanager:ro \
  --entrypoint lighthouse sigp/lighthouse:v8.0.1 \
  vc \
  --network mainnet \
  --validators-dir /var/lib/failoverd-validator/validators \
  --secrets-dir /var/lib/failoverd-validator/secrets \
  --beacon-nodes http://127.0.0.1:5052 \
  --enable-doppelganger-protection \
  --http \
  --http-port 5062 \
  --http-token-path /etc/failoverd/keymanager/api-token.txt \
  --suggested-fee-recipient 0x00000000219ab540356cBB839Cbe05303d7705Fa \
  --metrics \
  --metrics-address 127.0.0.1 \
  --metrics-port 5064
ExecStop=/usr/bin/docker stop -t 30 failoverd-validator
Restart=on-failure
RestartSec=30
TimeoutStopSec=60
# No [Install]: this unit is never enabled. It starts with the agent (which wants it), always through the gate.
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
# The validator client's keys and slashing protection: boot disk, root only.
install -d -m 0700 /var/lib/failoverd-validator /var/lib/failoverd-validator/validators /var/lib/failoverd-validator/secrets
chgrp 65532 /etc/failoverd/agent.key

# 3. The Engine API JWT and the Keymanager API token, made on this VM, only when absent.
if [ ! -s "$D/jwt.hex" ]; then
  (umask 077 && openssl rand -hex 32 >"$D/jwt.hex.new")
  mv "$D/jwt.hex.new" "$D/jwt.hex"
fi
chmod 0600 "$D/jwt.hex"
# Without a newline: lighthouse takes the whole file as the token, the agent
# trims it. Readable by root (lighthouse) and the agent's group only.
T=/etc/failoverd/keymanager/api-token.txt
install -d -g 65532 -m 0750 "${T%/*}"
if [ ! -s "$T" ]; then
  (umask 077 && openssl rand -hex 32 | tr -d '\n' >"$T.new")
  mv "$T.new" "$T"
  CHANGED="$CHANGED$T "
fi
chgrp 65532 "$T"
chmod 0640 "$T"

# 5. Start (or keep running) the units; restart one only when its files changed.
#    A signer's gate may refuse it: that is logged, and the rest still runs.
systemctl daemon-reload
systemctl enable -q failoverd-execution.service failoverd-beacon.service failoverd-agent.service failoverd-stop-clients.path
if changed /etc/systemd/system/failoverd-execution.service; then systemctl try-restart failoverd-execution.service; fi
if changed /etc/systemd/system/failoverd-beacon.service; then systemctl try-restart failoverd-beacon.service; fi
if changed /etc/systemd/system/failoverd-agent.service /etc/failoverd/keymanager/api-token.txt /etc/failoverd/ca.crt /etc/failoverd/agent.crt /etc/failoverd/agent.key /etc/failoverd/allowed_signers; then systemctl try-restart failoverd-agent.service; fi
if changed /etc/systemd/system/failoverd-validator.service /etc/failoverd/keymanager/api-token.txt; then systemctl try-restart failoverd-validator.service || log "failoverd-validator.service not restarted: its gate is closed (journalctl -u failoverd-validator.service)"; fi
systemctl start failoverd-execution.service failoverd-beacon.service failoverd-agent.service failoverd-stop-clients.path
systemctl start failoverd-validator.service || log "failoverd-validator.service not started: its gate is closed (journalctl -u failoverd-validator.service)"
log "standby ethereum-mainnet-1 bootstrapped"
