#!/usr/bin/env bash
# Finds the Versity S3 Gateway (versitygw), the S3 server the store's
# compare-and-swap tests start on loopback (Garage honours no conditional
# PUT; versitygw honours `If-None-Match: *` and `If-Match`), building it on
# first use, and prints the binary's path on stdout.
#
# In order: REWIND_VERSITYGW (used as it is); the one built into
# <target>/tools/versitygw-<version>/ by an earlier run; else it builds that
# one now with `go install github.com/versity/versitygw/cmd/versitygw@v<version>`
# (about 3-6 min cold on 2 cores, downloads included). <target> is
# CARGO_TARGET_DIR, else the workspace's target/.
#
# The build runs under an exclusive lock (flock on
# <target>/tools/versitygw-<version>/install.lock): parallel test binaries
# and .ci/run, which starts this script in the background at its beginning,
# all run it; one builds, the others wait and then find the binary. Go's
# output goes to install.log beside the lock. Status lines go to stderr; a
# line starting with `start: ` begins a long step, which lasts until the
# next line (the test harness shows its elapsed time, tests/src/setup.rs).
set -euo pipefail

version=1.8.0
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
[[ "$target" == /* ]] || target="$root/$target"
dir="$target/tools/versitygw-$version"
bin="$dir/bin/versitygw"
log="$dir/install.log"
lock="$dir/install.lock"

say() { printf 'versitygw: %s\n' "$*" >&2; }

if [[ -n "${REWIND_VERSITYGW:-}" ]]; then
  say "using REWIND_VERSITYGW=$REWIND_VERSITYGW"
  echo "$REWIND_VERSITYGW"
  exit 0
fi
if [[ -x "$bin" ]]; then
  say "using $bin (versitygw $version)"
  echo "$bin"
  exit 0
fi

mkdir -p "$dir"
exec 9>"$lock"
if command -v flock >/dev/null; then
  if ! flock -n 9; then
    waited=$SECONDS
    echo "start: versitygw: waiting for another process building versitygw $version (lock $lock; log $log)" >&2
    flock 9
    say "the other build ended after $((SECONDS - waited)) s"
  fi
else
  say "flock not found: building without a lock (parallel builds wait on Go's own locks)"
fi
if [[ -x "$bin" ]]; then
  say "using $bin (versitygw $version, built by another process)"
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { say "go is needed to build versitygw $version (or set REWIND_VERSITYGW)"; exit 1; }
echo "start: versitygw: building versitygw $version from its Go module into $dir (go install, about 3-6 min cold on 2 cores, once per target directory); log: $log" >&2
started=$SECONDS
if ! GOBIN="$dir/bin.tmp" go install "github.com/versity/versitygw/cmd/versitygw@v$version" \
  >"$log" 2>&1 </dev/null; then
  say "building versitygw $version failed after $((SECONDS - started)) s; see $log:"
  tail -n 20 "$log" | sed 's/^/  /' >&2
  exit 1
fi
rm -rf "$dir/bin"
mv "$dir/bin.tmp" "$dir/bin"
say "built versitygw $version in $((SECONDS - started)) s: $bin"
echo "$bin"
