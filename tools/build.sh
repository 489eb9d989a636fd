#!/usr/bin/env bash
# Builds the pinned real components the tests run into a cache directory, once:
#   - Alertmanager, amtool            (tools/go.mod)
#   - kube-apiserver v1.31.0          (tools/kube/go.mod, its own module: it
#                                      needs a replace per staging module)
#   - helm v3.22.0                    (tools/helm/go.mod, its own module: its
#                                      dependencies would upgrade Alertmanager's)
#   - promtool 3.15.0                 (tools/promtool/go.mod, its own module:
#                                      Prometheus v0.315.0 needs a replace and
#                                      would upgrade the others' dependencies)
# Each group has its own stamp (a hash of its go.mod and go.sum, and the
# link flags), so a later run with the same pins finds them there and does
# nothing. Prints the bin directory on stdout, and nothing else.
# etcd, which kube-apiserver needs, comes from Debian (etcd-server): see .ci/run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${FAILOVERD_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/failoverd/tools}
bin="$dir/bin"
mkdir -p "$bin"

# stamp_ok STAMPFILE HASH BINARY...: the binaries exist and were built from HASH.
stamp_ok() {
  local file=$1 hash=$2
  shift 2
  [ -f "$file" ] && [ "$(cat "$file")" = "$hash" ] || return 1
  local b
  for b in "$@"; do [ -x "$bin/$b" ] || return 1; done
}

# Alertmanager and amtool.
stamp=$(cat "$root/tools/go.mod" "$root/tools/go.sum" | sha256sum | cut -c1-16)
if ! stamp_ok "$bin/.stamp" "$stamp" alertmanager amtool; then
  echo "building Alertmanager and amtool into $bin (first run only, ~1 minute)" >&2
  (cd "$root/tools" && go build -o "$bin/" \
    github.com/prometheus/alertmanager/cmd/alertmanager \
    github.com/prometheus/alertmanager/cmd/amtool)
  echo "$stamp" >"$bin/.stamp"
fi

# kube-apiserver. Without the version ldflags it reports v0.0.0 and helm's
# kubeVersion checks trip (shared/TOOLING.md).
kube_version=v1.31.0
kube_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$kube_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=31 -X k8s.io/component-base/version.gitTreeState=clean"
kstamp=$( (cat "$root/tools/kube/go.mod" "$root/tools/kube/go.sum"; echo "$kube_ldflags") | sha256sum | cut -c1-16)
if ! stamp_ok "$bin/.stamp-kube-apiserver" "$kstamp" kube-apiserver; then
  echo "building kube-apiserver $kube_version into $bin (first run only, ~4 minutes)" >&2
  # Build beside the target and rename, so a test never runs a half-written binary.
  (cd "$root/tools/kube" && go build -trimpath -ldflags "$kube_ldflags" \
    -o "$bin/.kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
  mv -f "$bin/.kube-apiserver.tmp" "$bin/kube-apiserver"
  echo "$kstamp" >"$bin/.stamp-kube-apiserver"
fi

# helm, with the version variables its own Makefile sets: without them
# `helm version` says v3.22 and the default capabilities (helm template, helm
# lint) claim Kubernetes v1.20 instead of its client-go's v1.37.
helm_version=v3.22.0
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for p in pkg/lint/rules pkg/chartutil; do
  helm_ldflags="$helm_ldflags -X helm.sh/helm/v3/$p.k8sVersionMajor=1 -X helm.sh/helm/v3/$p.k8sVersionMinor=37"
done
hstamp=$( (cat "$root/tools/helm/go.mod" "$root/tools/helm/go.sum"; echo "$helm_ldflags") | sha256sum | cut -c1-16)
if ! stamp_ok "$bin/.stamp-helm" "$hstamp" helm; then
  echo "building helm $helm_version into $bin (first run only, ~2 minutes)" >&2
  (cd "$root/tools/helm" && CGO_ENABLED=0 go build -trimpath -ldflags "$helm_ldflags" \
    -o "$bin/.helm.tmp" helm.sh/helm/v3/cmd/helm)
  mv -f "$bin/.helm.tmp" "$bin/helm"
  echo "$hstamp" >"$bin/.stamp-helm"
fi

# promtool, for the alert rule tests (alerts/). Prometheus' module version
# v0.315.0 is release 3.15.0; the version variables make `promtool --version`
# say so instead of an empty version.
promtool_version=3.15.0
promtool_ldflags="-s -w -X github.com/prometheus/common/version.Version=$promtool_version -X github.com/prometheus/common/version.Branch=HEAD"
pstamp=$( (cat "$root/tools/promtool/go.mod" "$root/tools/promtool/go.sum"; echo "$promtool_ldflags") | sha256sum | cut -c1-16)
if ! stamp_ok "$bin/.stamp-promtool" "$pstamp" promtool; then
  echo "building promtool $promtool_version into $bin (first run only, ~5 minutes)" >&2
  (cd "$root/tools/promtool" && CGO_ENABLED=0 go build -trimpath -ldflags "$promtool_ldflags" \
    -o "$bin/.promtool.tmp" github.com/prometheus/prometheus/cmd/promtool)
  mv -f "$bin/.promtool.tmp" "$bin/promtool"
  echo "$pstamp" >"$bin/.stamp-promtool"
fi

echo "$bin"
