#!/usr/bin/env bash
# Builds the real control plane Rewind's tests run against: kube-apiserver and
# etcd from their Go modules at the versions pinned in go.mod, into
# target/controlplane/bin/. Skips what is already built for these pins.
#
# Overrides: REWIND_KUBE_APISERVER, REWIND_ETCD, REWIND_KUBECTL name existing
# binaries and skip their build. Only the Go toolchain and its module proxy are
# used; nothing is downloaded by hand.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
bin="$target/controlplane/bin"
mkdir -p "$bin"

log() { printf 'controlplane: %s\n' "$*" >&2; }

# The stamp ties built binaries to the exact pins and to this script's build
# flags, so a bump in go.mod or a flag change rebuilds.
stamp="$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)"

# k8s.io/kubernetes needs Go >= the version its go.mod names; a machine whose
# Go is older fetches that toolchain through the module proxy (GOTOOLCHAIN).
need_go="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$here/go.mod")"
if command -v go >/dev/null && [[ -z "${GOTOOLCHAIN:-}" ]]; then
  have_go="$(go env GOVERSION | sed 's/^go//')"
  if [[ "$(printf '%s\n%s\n' "$need_go" "$have_go" | sort -V | head -1)" != "$need_go" ]]; then
    export GOTOOLCHAIN="go${need_go}"
    log "go $have_go is older than $need_go; using GOTOOLCHAIN=$GOTOOLCHAIN"
  fi
fi

# Without these, kube-apiserver reports /version as v0.0.0-master.
kube_version="$(sed -n 's/^[[:space:]]*k8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$here/go.mod" | head -1)"
kube_minor="$(echo "$kube_version" | cut -d. -f2)"
kube_ldflags="-X k8s.io/component-base/version.gitVersion=$kube_version \
-X k8s.io/component-base/version.gitMajor=1 \
-X k8s.io/component-base/version.gitMinor=$kube_minor \
-X k8s.io/component-base/version.gitTreeState=clean"


build() { # name, package, env suffix, extra ldflags
  local name="$1" pkg="$2" out="$bin/$1" extra="${4:-}"
  if [[ -x "$out" && -f "$out.stamp" && "$(cat "$out.stamp")" == "$stamp" ]]; then
    log "$name is up to date ($out)"
    return
  fi
  command -v go >/dev/null || { log "go is needed to build $name (or set REWIND_${3})"; exit 1; }
  log "building $name from $pkg (a cold build takes several minutes)"
  local start=$SECONDS
  (cd "$here" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w $extra" -o "$out.tmp" "$pkg")
  mv -f "$out.tmp" "$out"
  echo "$stamp" > "$out.stamp"
  log "built $name in $((SECONDS - start)) s"
}

if [[ -n "${REWIND_ETCD:-}" ]]; then log "using REWIND_ETCD=$REWIND_ETCD"; else
  build etcd go.etcd.io/etcd/server/v3 ETCD
fi
if [[ -n "${REWIND_KUBE_APISERVER:-}" ]]; then log "using REWIND_KUBE_APISERVER=$REWIND_KUBE_APISERVER"; else
  build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver KUBE_APISERVER "$kube_ldflags"
fi

# kubectl: the one named, else the machine's, else built at the same release.
if [[ -n "${REWIND_KUBECTL:-}" ]]; then
  log "using REWIND_KUBECTL=$REWIND_KUBECTL"
elif command -v kubectl >/dev/null; then
  ln -sf "$(command -v kubectl)" "$bin/kubectl"
  log "using the machine's kubectl ($(command -v kubectl))"
else
  build kubectl k8s.io/kubernetes/cmd/kubectl KUBECTL "$kube_ldflags"
fi
log "binaries are in $bin"
