#!/bin/bash
# failoverd standby bootstrap: validator ethereum-mainnet-1, ethereum/mainnet.
# Runs geth (execution) and lighthouse (beacon node) in Docker, and
# the failoverd standby agent. KEYLESS: no validator client, no validator
# keys, no signing history, never a copy of a home signing key.
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
put /etc/failoverd/agent.key 0600 <<'FAILOVERD_EOF'
-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
-----END PRIVATE KEY-----
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
Description=failoverd standby agent (status over mutual TLS)
Wants=network-online.target
After=network-online.target docker.service
Requires=docker.service
RequiresMountsFor=/var/lib/failoverd-chain

[Service]
ExecStartPre=-/usr/bin/docker rm -f failoverd-agent
ExecStart=/usr/bin/docker run --rm --name failoverd-agent --network host --log-driver journald \
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
  --control-dir /var/lib/failoverd-agent
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
mkdir -p /var/lib/failoverd-agent

# 3. The Engine API JWT, made on this VM, only when absent.
if [ ! -s "$D/jwt.hex" ]; then
  (umask 077 && openssl rand -hex 32 >"$D/jwt.hex.new")
  mv "$D/jwt.hex.new" "$D/jwt.hex"
fi
chmod 0600 "$D/jwt.hex"

# 5. Start (or keep running) the units; restart one only when its files changed.
systemctl daemon-reload
systemctl enable -q failoverd-execution.service failoverd-beacon.service failoverd-agent.service failoverd-stop-clients.path
if changed /etc/systemd/system/failoverd-execution.service; then systemctl try-restart failoverd-execution.service; fi
if changed /etc/systemd/system/failoverd-beacon.service; then systemctl try-restart failoverd-beacon.service; fi
if changed /etc/systemd/system/failoverd-agent.service /etc/failoverd/ca.crt /etc/failoverd/agent.crt /etc/failoverd/agent.key; then systemctl try-restart failoverd-agent.service; fi
systemctl start failoverd-execution.service failoverd-beacon.service failoverd-agent.service failoverd-stop-clients.path
log "standby ethereum-mainnet-1 bootstrapped"
