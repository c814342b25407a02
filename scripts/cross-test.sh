#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# CI cross stage: build for armhf, aarch64 and riscv64, run their unit tests under qemu-user, smoke-test the static streamer, package a Rinkhals app.
#
#   scripts/cross-test.sh [--sysroots-only | --build-only | --test-only] [ARCH...]
#                                                   ARCH: armhf aarch64 riscv64 (default: all three)
#
# 1. sysroots (scripts/make-sysroot.sh, cached in ~/.cache/printcast/sysroots)
# 2. per architecture: configure + build the <arch>-test preset (the unit tests, the helpers they
#    spawn and the streamer); armhf also builds the Kobra S1 image (ks1-release: static,
#    stripped, size report, Rinkhals package)
# 3. per architecture: `ctest -L unit` through CMAKE_CROSSCOMPILING_EMULATOR (qemu-<arch>-static
#    -L <sysroot>); armhf also runs the static printcast-streamer under qemu-arm-static on the
#    virtual board (serves /snapshot over loopback, a whole JPEG; stops on SIGTERM with exit code
#    0), a second one whose camera is the first one's /flv (H.264, as gkcam's FLV: its /snapshot
#    is decoded by the linked libavcodec), and the ks1-release tests (the Rinkhals package and the
#    firmware size budget)
# Without a mode flag it does all three, and an architecture's tests run while the next one
# compiles (the compiler niced below them). --sysroots-only does 1; --build-only 1 and 2;
# --test-only 3 (scripts/run-tests.sh builds in the background and tests in the foreground).
# Compiles go through ccache when it is installed (~/.cache/ccache), so reruns and the ks1 image
# (the same sources as armhf-test) cost little. Each step's time goes to the stage table
# (scripts/lib/stages.sh), printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/stages.sh
stages_init
jobs=${JOBS:-$(nproc)}
mode=all
case "${1:-}" in
  --sysroots-only) mode=sysroots; shift ;;
  --build-only) mode=build; shift ;;
  --test-only) mode=test; shift ;;
esac
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(armhf aarch64 riscv64)
logs=build/test-logs
mkdir -p "$logs"
cfglog=$(mktemp)
trap 'rm -f "$cfglog"; stages_finish' EXIT

use_ccache

make_sysroot() {
  if [ "$1" = armhf ]; then
    scripts/make-sysroot.sh "$1" --static >/dev/null
  else
    scripts/make-sysroot.sh "$1" >/dev/null
  fi
}

# Only what the unit tests and the smoke test need: the unit_* binaries, the helpers they spawn
# and printcast-streamer (the integration and lab binaries need the host's clients and a VM).
build_targets() {
  local help
  help=$(cmake --build "build/$1" --target help)
  sed -n 's/^\(unit-tests\|printcast-streamer\): .*/\1/p' <<<"$help" | sort -u
  # Static builds: the per-binary size report.
  if grep -q 'CMakeFiles/printcast-size-report:' <<<"$help"; then echo printcast-size-report; fi
}

# cross_build PRESET: configure and build what the tests need (niced: tests running meanwhile
# keep their CPU).
cross_build() {
  local preset=$1 targets
  cmake --preset "$preset" >"$cfglog" 2>&1 || { cat "$cfglog"; return 1; }
  mapfile -t targets < <(build_targets "$preset")
  nice -n 10 cmake --build --preset "$preset" -j "$jobs" --target "${targets[@]}"
}
ks1_build() {
  cmake --preset ks1-release >"$cfglog" 2>&1 || { cat "$cfglog"; return 1; }
  nice -n 10 cmake --build --preset ks1-release -j "$jobs" --target rinkhals-package printcast-size-report
}
build_arch() {
  stage "cross: build $1-test" cross_build "$1-test"
  if [ "$1" = armhf ]; then stage "cross: build ks1-release image + Rinkhals package" ks1_build; fi
}

# unit_tests PRESET: ctest under qemu, the output in build/test-logs/ctest-PRESET.log.
unit_tests() {
  local rc=0
  ctest --preset "$1" -j "$jobs" >"$logs/ctest-$1.log" 2>&1 || rc=$?
  STAGE_DETAIL=$(ctest_counts "$logs/ctest-$1.log")
  echo "$1: $STAGE_DETAIL"
  [ "$rc" -eq 0 ] || cat "$logs/ctest-$1.log"
  return "$rc"
}
ks1_tests() {
  ctest --preset ks1-release
  local report=build/ks1-release/size-report/printcast-streamer.txt
  [ ! -f "$report" ] || STAGE_DETAIL="streamer $(sed -n '1s/^[^:]*: //p' "$report")"
}
test_arch() {
  stage "cross: unit tests $1-test (qemu-$1)" unit_tests "$1-test"
  if [ "$1" = armhf ]; then
    stage "cross: static armhf streamer under qemu-arm" smoke_test
    stage "cross: ks1-release tests (package, size)" ks1_tests
  fi
}

smoke_test() {
  local bin=build/armhf-test/apps/streamer/printcast-streamer
  local log=build/armhf-test/streamer-smoke.log jpeg=build/armhf-test/streamer-smoke.jpg
  file_info=$(readelf -lh "$bin")
  grep -q 'Machine:.*ARM' <<<"$file_info" || { echo "FAIL: $bin is not ARM"; return 1; }
  if grep -q INTERP <<<"$file_info"; then echo "FAIL: $bin is not static"; return 1; fi
  qemu-arm-static "$bin" --board virtual --port 0 --control-port 0 --flv-port -1 --rtsp-port -1 >"$log" 2>&1 &
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
  # An H.264 camera on the static image (gkcam's FLV in encoder_type gkcam): a second streamer
  # takes this one's /flv as its source; its /snapshot is a JPEG decoded by the linked
  # libavcodec, and /api/stats names it.
  if grep -q '^PRINTCAST_WITH_AVCODEC:STRING=ON' build/armhf-test/CMakeCache.txt 2>/dev/null; then
    smoke_h264_camera "$bin" "$port" || { kill -KILL "$pid"; return 1; }
  fi
  stop_streamer "$pid" "$log" "the streamer" || return 1
  echo "SIGTERM: stopped cleanly (exit 0)"
}

# stop_streamer PID LOG WHAT: SIGTERM, then it must be gone within 20 s with exit code 0.
stop_streamer() {
  local pid=$1 log=$2 what=$3 i rc=0
  kill -TERM "$pid"
  for i in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "FAIL: $what still runs 20 s after SIGTERM"; cat "$log"; kill -KILL "$pid"; return 1
  fi
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || { echo "FAIL: $what's exit code $rc after SIGTERM"; cat "$log"; return 1; }
}

# smoke_h264_camera BIN PORT: a streamer whose camera is the H.264 of http://127.0.0.1:PORT/flv.
smoke_h264_camera() {
  local bin=$1 src=$2 log=build/armhf-test/streamer-smoke-h264.log jpeg=build/armhf-test/streamer-smoke-h264.jpg
  qemu-arm-static "$bin" --board virtual --source "http://127.0.0.1:$src/flv" --port 0 --control-port 0 --ws-port -1 \
    --flv-port -1 --rtsp-port -1 >"$log" 2>&1 &
  local pid=$! port="" control="" i
  for i in $(seq 1 600); do
    port=$(sed -n 's|^ *status *http://127\.0\.0\.1:\([0-9]*\)/status.*|\1|p' "$log")
    control=$(sed -n 's|^ *stats *http://127\.0\.0\.1:\([0-9]*\)/api/stats.*|\1|p' "$log")
    [ -n "$port" ] && [ -n "$control" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "FAIL: the H.264-camera streamer exited early"; cat "$log"; return 1; }
    sleep 0.1
  done
  [ -n "$port" ] && [ -n "$control" ] || { echo "FAIL: no status/stats URL after 60 s"; cat "$log"; kill -KILL "$pid"; return 1; }
  if ! curl -sf --max-time 60 -o "$jpeg" "http://127.0.0.1:$port/snapshot"; then
    echo "FAIL: GET /snapshot of an H.264 camera"; cat "$log"; kill -KILL "$pid"; return 1
  fi
  local head tail size backend
  size=$(stat -c %s "$jpeg")
  head=$(head -c 2 "$jpeg" | od -An -tx1 | tr -d ' ')
  tail=$(tail -c 2 "$jpeg" | od -An -tx1 | tr -d ' ')
  if [ "$head" != ffd8 ] || [ "$tail" != ffd9 ] || [ "$size" -lt 1000 ]; then
    echo "FAIL: /snapshot of an H.264 camera is not a JPEG ($size bytes, starts $head, ends $tail)"; kill -KILL "$pid"; return 1
  fi
  # "<backend>|<pictures decoded>"
  backend=$(curl -sf --max-time 30 "http://127.0.0.1:$control/api/stats" | python3 -c \
    'import json,sys; d=json.load(sys.stdin)["h264_decoder"]; print(d["backend"] + "|" + str(d["pictures"]))' \
    2>/dev/null || true)
  if [[ "$backend" != "libavcodec "[0-9]*"|"[1-9]* ]]; then
    echo "FAIL: /api/stats h264_decoder backend|pictures: '${backend}' (not libavcodec, or no picture)"
    kill -KILL "$pid"; return 1
  fi
  echo "H.264 camera (the first one's /flv): GET /snapshot: JPEG, $size bytes;" \
    "decoder ${backend%|*}, ${backend#*|} picture(s) decoded"
  stop_streamer "$pid" "$log" "the H.264-camera streamer"
}

if [ "$mode" != test ]; then
  for arch in "${archs[@]}"; do stage "cross: sysroot $arch" make_sysroot "$arch"; done
fi
[ "$mode" != sysroots ] || exit 0

case "$mode" in
  build)
    for arch in "${archs[@]}"; do build_arch "$arch"; done
    ;;
  test)
    for arch in "${archs[@]}"; do test_arch "$arch"; done
    ;;
  all)
    # Each architecture's tests in the background while the next one builds.
    pid=""
    for arch in "${archs[@]}"; do
      build_arch "$arch"
      if [ -n "$pid" ]; then wait "$pid"; fi
      test_arch "$arch" &
      pid=$!
    done
    wait "$pid"
    ;;
esac
if command -v ccache >/dev/null 2>&1; then
  ccache -s | grep -iE '^ *(hits|misses|cacheable)' || true
fi
