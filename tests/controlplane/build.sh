#!/usr/bin/env bash
# Builds the real control plane Rewind's tests run against: kube-apiserver and
# etcd from their Go modules at the versions pinned in go.mod, into
# target/controlplane/bin/. Skips what is already built for these pins.
#
# kube-controller-manager is built from the same k8s.io/kubernetes module and
# version as kube-apiserver; tests that ask for controllers start it.
#
# Overrides: REWIND_KUBE_APISERVER, REWIND_KUBE_CONTROLLER_MANAGER, REWIND_ETCD,
# REWIND_KUBECTL name existing binaries and skip their build. Only the Go toolchain and its module proxy are
# used; nothing is downloaded by hand.
#
# It runs under an exclusive lock (flock on target/controlplane/build.lock):
# the test harness runs it from every test binary and .ci/run starts it in
# the background at its beginning; one builds, the others wait and then find
# the binaries up to date. Go's output goes to target/controlplane/build.log.
# Status lines go to stderr; a line starting with `start: ` begins a long
# step, which lasts until the next line (the test harness shows its elapsed
# time, tests/src/setup.rs).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
[[ "$target" == /* ]] || target="$root/$target"
bin="$target/controlplane/bin"
build_log="$target/controlplane/build.log"
mkdir -p "$bin"

log() { printf 'controlplane: %s\n' "$*" >&2; }

lock="$target/controlplane/build.lock"
exec 9>"$lock"
if command -v flock >/dev/null; then
  if ! flock -n 9; then
    waited=$SECONDS
    echo "start: controlplane: waiting for another process building the control plane (lock $lock; log $build_log)" >&2
    flock 9
    log "the other build ended after $((SECONDS - waited)) s"
  fi
else
  log "flock not found: building without a lock"
fi

# A binary's stamp ties it to the exact pins and to the go build command
# that made it (flags, ldflags, package), so a bump in go.mod or a flag change
# rebuilds, and an edit elsewhere in this script does not.
pins="$(cat "$here/go.mod" "$here/go.sum")"

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


etcd_version="$(sed -n 's/^[[:space:]]*go.etcd.io\/etcd\/server\/v3 \(v[0-9.]*\)$/\1/p' "$here/go.mod" | head -1)"

log_started=
build() { # name, package, env suffix, version, cold time on 2 cores, extra ldflags
  local name="$1" pkg="$2" out="$bin/$1" version="$4" cold="$5" extra="${6:-}"
  local flags=(-trimpath "-ldflags=-s -w $extra")
  local stamp
  stamp="$(printf '%s\nCGO_ENABLED=0 GOFLAGS=-mod=mod go build %s %s\n' "$pins" "${flags[*]}" "$pkg" | sha256sum | cut -c1-16)"
  if [[ -x "$out" && -f "$out.stamp" && "$(cat "$out.stamp")" == "$stamp" ]]; then
    log "$name is up to date ($out)"
    return
  fi
  command -v go >/dev/null || { log "go is needed to build $name (or set REWIND_${3})"; exit 1; }
  # One log per run of this script: the first build starts it afresh.
  if [[ -z "$log_started" ]]; then : >"$build_log"; log_started=1; fi
  echo "start: controlplane: building $name $version from $pkg with Go (about $cold on 2 cores with empty Go caches); log: $build_log" >&2
  local start=$SECONDS
  echo "=== go build $pkg ($name $version)" >>"$build_log"
  if ! (cd "$here" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build "${flags[@]}" -o "$out.tmp.$$" "$pkg") >>"$build_log" 2>&1 </dev/null; then
    log "building $name failed after $((SECONDS - start)) s; see $build_log:"
    tail -n 20 "$build_log" | sed 's/^/  /' >&2
    exit 1
  fi
  mv -f "$out.tmp.$$" "$out"
  echo "$stamp" > "$out.stamp"
  log "built $name $version in $((SECONDS - start)) s"
}

if [[ -n "${REWIND_ETCD:-}" ]]; then log "using REWIND_ETCD=$REWIND_ETCD"; else
  build etcd go.etcd.io/etcd/server/v3 ETCD "$etcd_version" "1-3 min"
fi
if [[ -n "${REWIND_KUBE_APISERVER:-}" ]]; then log "using REWIND_KUBE_APISERVER=$REWIND_KUBE_APISERVER"; else
  build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver KUBE_APISERVER "$kube_version" "3-10 min" "$kube_ldflags"
fi
if [[ -n "${REWIND_KUBE_CONTROLLER_MANAGER:-}" ]]; then log "using REWIND_KUBE_CONTROLLER_MANAGER=$REWIND_KUBE_CONTROLLER_MANAGER"; else
  build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager KUBE_CONTROLLER_MANAGER "$kube_version" "3-8 min" "$kube_ldflags"
fi

# kubectl: the one named, else the machine's, else built at the same release.
if [[ -n "${REWIND_KUBECTL:-}" ]]; then
  log "using REWIND_KUBECTL=$REWIND_KUBECTL"
elif command -v kubectl >/dev/null; then
  ln -sf "$(command -v kubectl)" "$bin/kubectl"
  log "using the machine's kubectl ($(command -v kubectl))"
else
  build kubectl k8s.io/kubernetes/cmd/kubectl KUBECTL "$kube_version" "2-5 min" "$kube_ldflags"
fi
log "binaries are in $bin"
