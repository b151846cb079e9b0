#!/usr/bin/env bash
# Finds Garage, the S3-compatible server the store tests start on loopback,
# at the version they are written for, installing it on first use, and
# prints the binary's path on stdout.
#
# In order: REWIND_GARAGE (used as it is); a `garage` on PATH or in
# ~/.cargo/bin whose `garage --version` is the pinned one; the one installed
# into <target>/tools/garage-<version>/ by an earlier run; else it installs
# that one now with `cargo install garage --locked --version <version>
# --root <target>/tools/garage-<version>` (about 20 min cold on 2 cores).
# <target> is CARGO_TARGET_DIR, else the workspace's target/.
#
# The install runs under an exclusive lock (flock on
# <target>/tools/garage-<version>/install.lock): parallel test binaries and
# .ci/run, which starts this script in the background at its beginning, all
# run it; one installs, the others wait and then find the binary. cargo's
# output goes to install.log beside the lock. Status lines go to stderr; a
# line starting with `start: ` begins a long step, which lasts until the
# next line (the test harness shows its elapsed time, tests/src/setup.rs).
# CARGO names the cargo to run (cargo sets it for the processes it starts).
set -euo pipefail

version=2.5.0
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
[[ "$target" == /* ]] || target="$root/$target"
dir="$target/tools/garage-$version"
bin="$dir/bin/garage"
log="$dir/install.log"
lock="$dir/install.lock"
cargo="${CARGO:-cargo}"

say() { printf 'garage: %s\n' "$*" >&2; }

# Whether $1 runs and reports the pinned version ("garage cargo:2.5.0 [...]").
pinned() {
  local out
  [[ -x "$1" ]] || return 1
  out="$("$1" --version 2>/dev/null | head -1)" || return 1
  [[ "$out" =~ (^|[^0-9.])${version//./\\.}([^0-9.-]|$) ]]
}

if [[ -n "${REWIND_GARAGE:-}" ]]; then
  say "using REWIND_GARAGE=$REWIND_GARAGE"
  echo "$REWIND_GARAGE"
  exit 0
fi

candidates=()
if on_path="$(command -v garage 2>/dev/null)"; then candidates+=("$on_path"); fi
[[ -n "${HOME:-}" ]] && candidates+=("$HOME/.cargo/bin/garage")
candidates+=("$bin")
for c in "${candidates[@]}"; do
  if pinned "$c"; then
    say "using $c (garage $version)"
    echo "$c"
    exit 0
  elif [[ -x "$c" ]]; then
    say "ignoring $c: not garage $version ($("$c" --version 2>/dev/null | head -1))"
  fi
done

mkdir -p "$dir"
exec 9>"$lock"
if command -v flock >/dev/null; then
  if ! flock -n 9; then
    waited=$SECONDS
    echo "start: garage: waiting for another process installing garage $version (lock $lock; log $log)" >&2
    flock 9
    say "the other install ended after $((SECONDS - waited)) s"
  fi
else
  say "flock not found: installing without a lock (parallel installs wait on cargo's own locks)"
fi

if pinned "$bin"; then
  say "using $bin (garage $version, installed by another process)"
  echo "$bin"
  exit 0
fi

echo "start: garage: installing garage $version from crates.io into $dir (cargo install, about 20 min cold on 2 cores, once per target directory); log: $log" >&2
started=$SECONDS
# Its own target directory: CARGO_TARGET_DIR (the workspace's) would make
# this build wait for, and block, the workspace's builds.
if ! "$cargo" install garage --locked --version "$version" --root "$dir" \
  --target-dir "$dir/build" >"$log" 2>&1 </dev/null; then
  say "installing garage $version failed after $((SECONDS - started)) s; see $log:"
  tail -n 20 "$log" | sed 's/^/  /' >&2
  exit 1
fi
rm -rf "$dir/build"
if ! pinned "$bin"; then
  say "cargo install succeeded but $bin does not report garage $version; see $log"
  exit 1
fi
say "installed garage $version in $((SECONDS - started)) s: $bin"
echo "$bin"
