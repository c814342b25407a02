#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# CI cross stage: build for armhf, aarch64 and riscv64, run their unit tests under qemu-user, smoke-test the static streamer, package a Rinkhals app.
#
#   scripts/cross-test.sh [ARCH...]     default: armhf aarch64 riscv64
#
# 1. sysroots (scripts/make-sysroot.sh, cached in ~/.cache/printcast/sysroots)
# 2. per architecture: configure + build the <arch>-test preset (unit tests and the streamer),
#    `ctest -L unit` through CMAKE_CROSSCOMPILING_EMULATOR (qemu-<arch>-static -L <sysroot>)
# 3. armhf: the static printcast-streamer runs under qemu-arm-static on the virtual board,
#    serves /snapshot over loopback (a whole JPEG), stops on SIGTERM with exit code 0
# 4. the Kobra S1 image (ks1-release): static, stripped, size report, Rinkhals package + its test
# Compiles go through ccache when it is installed (~/.cache/ccache), so reruns and the ks1 image
# (the same sources as armhf-test) cost little. Prints each step's duration and the total.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(armhf aarch64 riscv64)

stage_start=$(date +%s)
cfglog=$(mktemp)
trap 'rm -f "$cfglog"' EXIT
step_start=$stage_start
step() {
  local now
  now=$(date +%s)
  [ -z "${step_name:-}" ] || echo "-- cross: $step_name: $((now - step_start)) s"
  step_name=$1
  step_start=$now
  echo "== cross: $1"
}

if command -v ccache >/dev/null 2>&1; then
  # No CCACHE_BASEDIR: it rewrites paths relative, and tests read __FILE__.
  export CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache
  ccache -z >/dev/null
fi

for arch in "${archs[@]}"; do
  step "sysroot $arch"
  if [ "$arch" = armhf ]; then
    scripts/make-sysroot.sh "$arch" --static >/dev/null
  else
    scripts/make-sysroot.sh "$arch" >/dev/null
  fi
done

# Only what the unit tests and the smoke test need: the unit_* binaries and printcast-streamer
# (the integration and lab binaries need the host's clients and a VM).
build_targets() {
  local help
  help=$(cmake --build "build/$1" --target help)
  sed -n 's/^\(unit_[A-Za-z0-9_]*\|printcast-streamer\): .*/\1/p' <<<"$help" | sort -u
  # Static builds: the per-binary size report.
  if grep -q 'CMakeFiles/printcast-size-report:' <<<"$help"; then echo printcast-size-report; fi
}

for arch in "${archs[@]}"; do
  preset=$arch-test
  step "configure + build $preset"
  cmake --preset "$preset" >"$cfglog" 2>&1 || { cat "$cfglog"; exit 1; }
  mapfile -t targets < <(build_targets "$preset")
  cmake --build --preset "$preset" -j "$jobs" --target "${targets[@]}"
  step "unit tests $preset (qemu-$arch)"
  ctest --preset "$preset" -j "$jobs"
done

smoke_test() {
  local bin=build/armhf-test/apps/streamer/printcast-streamer
  local log=build/armhf-test/streamer-smoke.log jpeg=build/armhf-test/streamer-smoke.jpg
  file_info=$(readelf -lh "$bin")
  grep -q 'Machine:.*ARM' <<<"$file_info" || { echo "FAIL: $bin is not ARM"; return 1; }
  if grep -q INTERP <<<"$file_info"; then echo "FAIL: $bin is not static"; return 1; fi
  qemu-arm-static "$bin" --board virtual --port 0 --control-port 0 --flv-port -1 >"$log" 2>&1 &
  local pid=$! port="" i
  for i in $(seq 1 600); do
    port=$(sed -n 's|^ *status *http://127\.0\.0\.1:\([0-9]*\)/status.*|\1|p' "$log")
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "FAIL: the streamer exited early"; cat "$log"; return 1; }
    sleep 0.1
  done
  [ -n "$port" ] || { echo "FAIL: no status URL after 60 s"; cat "$log"; kill -KILL "$pid"; return 1; }
  echo "streamer (qemu-arm) up on port $port"
  if ! curl -sf --max-time 30 -o "$jpeg" "http://127.0.0.1:$port/snapshot"; then
    echo "FAIL: GET /snapshot"; cat "$log"; kill -KILL "$pid"; return 1
  fi
  local head tail size
  size=$(stat -c %s "$jpeg")
  head=$(head -c 2 "$jpeg" | od -An -tx1 | tr -d ' ')
  tail=$(tail -c 2 "$jpeg" | od -An -tx1 | tr -d ' ')
  if [ "$head" != ffd8 ] || [ "$tail" != ffd9 ] || [ "$size" -lt 1000 ]; then
    echo "FAIL: /snapshot is not a JPEG ($size bytes, starts $head, ends $tail)"; kill -KILL "$pid"; return 1
  fi
  echo "GET /snapshot: JPEG, $size bytes"
  kill -TERM "$pid"
  local rc=0
  for i in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "FAIL: still running 20 s after SIGTERM"; cat "$log"; kill -KILL "$pid"; return 1
  fi
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || { echo "FAIL: exit code $rc after SIGTERM"; cat "$log"; return 1; }
  echo "SIGTERM: stopped cleanly (exit 0)"
}

if [[ " ${archs[*]} " == *" armhf "* ]]; then
  step "static armhf streamer under qemu-arm (virtual board)"
  smoke_test

  step "ks1-release image + Rinkhals package"
  cmake --preset ks1-release >"$cfglog" 2>&1 || { cat "$cfglog"; exit 1; }
  cmake --build --preset ks1-release -j "$jobs" --target rinkhals-package printcast-size-report
  ctest --preset ks1-release
fi

step "done"
if command -v ccache >/dev/null 2>&1; then
  ccache -s | grep -iE '^ *(hits|misses|cacheable)' || true
fi
echo "== cross stage: $(( $(date +%s) - stage_start )) s (${archs[*]})"
