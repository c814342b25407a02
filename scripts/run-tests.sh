#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `make test` (what CI runs): install what is missing, then build and run every test, and print
# a table of stage wall times and test counts at the end (on failure: up to the failing stage).
#
#   packages (scripts/install-deps.sh test), clang-format check
#   ci     the `ci` preset (warnings are errors), everything: unit, integration with real clients,
#          browser (Chromium), the hardware lab (QEMU)
#   asan   the unit tests under ASan+UBSan; tsan: under ThreadSanitizer (these presets build only
#          the target `unit-tests`: nothing they do not run)
#   fuzz   libFuzzer, 20 s per target (scripts/fuzz.sh; PRINTCAST_SKIP_FUZZ=1 skips it)
#   cross  armhf, aarch64, riscv64 unit tests under qemu-user, the static armhf streamer, the
#          Kobra S1 Rinkhals package (scripts/cross-test.sh; PRINTCAST_SKIP_CROSS=1 skips it)
#
# Two lanes. The tests run in the foreground, in the order above. Once the `ci` tests are done
# (they run alone: the browser and lab tests measure frame rates), every other build (asan, tsan,
# fuzz, the cross presets) runs in one background lane at idle CPU priority (SCHED_IDLE): it takes
# only the CPU the tests leave unused. A test stage whose build is not finished waits for it (the table
# shows the wait). The cross sysroots (downloads) are fetched in the background from the start.
# PRINTCAST_SERIAL=1 runs everything in one lane instead. Logs: build/test-logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/stages.sh
stages_init
logs=build/test-logs
rm -rf "$logs"
mkdir -p "$logs"
jobs=$(nproc)
run_start=$(stages_now)
lane_pid=""
sysroot_pid=""
kill_tree() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  for p in $lane_pid $sysroot_pid; do kill_tree "$p"; done
  stages_finish
  echo "== make test: $(awk -v a="$run_start" -v b="$(stages_now)" 'BEGIN { s = b - a; printf "%dm%02ds", s / 60, s % 60 }') wall clock, exit $rc"
}
trap cleanup EXIT
cross=1
[ "${PRINTCAST_SKIP_CROSS:-0}" != 1 ] || cross=0
fuzz=1
[ "${PRINTCAST_SKIP_FUZZ:-0}" != 1 ] || fuzz=0

stage "packages (install-deps.sh test)" scripts/install-deps.sh test
format_check() { git ls-files '*.cpp' '*.h' | xargs clang-format --dry-run --Werror; }
stage "format check" format_check

# ccache for every build: a second run from the same folder compiles little.
use_ccache
! command -v ccache >/dev/null 2>&1 || ccache -z >/dev/null

# build PRESET [TARGET]: configure (the summary goes to the log) and build.
build() {
  local preset=$1 target=${2:-all}
  cmake --preset "$preset" >"$logs/configure-$preset.log" 2>&1 || { cat "$logs/configure-$preset.log"; return 1; }
  cmake --build --preset "$preset" -j "$jobs" --target "$target"
}
# run_ctest PRESET [ENV...]: ctest, its summary kept for the table.
run_ctest() {
  local preset=$1 rc=0
  shift
  env "$@" ctest --preset "$preset" -j "$jobs" >"$logs/ctest-$preset.log" 2>&1 || rc=$?
  STAGE_DETAIL=$(ctest_counts "$logs/ctest-$preset.log")
  if [ "$rc" -ne 0 ]; then
    cat "$logs/ctest-$preset.log"
  else
    grep -E 'tests passed|Total Test time' "$logs/ctest-$preset.log" || true
  fi
  return "$rc"
}

# --- the background lane --------------------------------------------------------------------
# lane_add NAME CMD...: one build of the lane; its log is build/test-logs/lane-NAME.log, its exit
# code build/test-logs/lane-NAME.rc (what lane_wait looks for). The lane stops at a failure.
lane_jobs=()
lane_add() { lane_jobs+=("$*"); }
lane_add asan build asan unit-tests
lane_add tsan build tsan unit-tests
[ "$fuzz" = 0 ] || lane_add fuzz scripts/fuzz.sh --build-only
if [ "$cross" = 1 ]; then
  for arch in armhf aarch64 riscv64; do lane_add "cross-$arch" scripts/cross-test.sh --build-only "$arch"; done
fi
lane_run() {
  local job name rc
  for job in "${lane_jobs[@]}"; do
    read -r -a cmd <<<"$job"
    name=${cmd[0]}
    rc=0
    stage "build: $name (background lane)" "${cmd[@]:1}" >"$logs/lane-$name.log" 2>&1 || rc=$?
    echo "$rc" >"$logs/lane-$name.rc"
    [ "$rc" -eq 0 ] || return "$rc"
  done
}
# lane_wait NAME: until the lane has built NAME; its log on failure.
lane_wait() {
  local name=$1 rc
  if [ -z "$lane_pid" ]; then  # PRINTCAST_SERIAL=1: build it now, in the foreground
    local job
    for job in "${lane_jobs[@]}"; do
      read -r -a cmd <<<"$job"
      if [ "${cmd[0]}" = "$name" ]; then "${cmd[@]:1}"; return; fi
    done
    return 1
  fi
  while [ ! -f "$logs/lane-$name.rc" ]; do
    if ! kill -0 "$lane_pid" 2>/dev/null && [ ! -f "$logs/lane-$name.rc" ]; then
      echo "the background lane stopped before building $name (an earlier build failed):"
      tail -n 80 "$logs"/lane-*.log
      return 1
    fi
    sleep 1
  done
  rc=$(cat "$logs/lane-$name.rc")
  if [ "$rc" != 0 ]; then
    echo "background build of $name failed ($logs/lane-$name.log):"
    tail -n 150 "$logs/lane-$name.log"
  fi
  return "$rc"
}

# The cross sysroots: downloads, from now on in the background.
if [ "$cross" = 1 ]; then
  echo "== cross sysroots: fetched in the background ($logs/cross-sysroots.log)"
  nice -n 10 scripts/cross-test.sh --sysroots-only >"$logs/cross-sysroots.log" 2>&1 &
  sysroot_pid=$!
fi

stage "build: ci (everything)" build ci
# The ci tests have the machine to themselves: the browser tests count dropped frames and the
# lab checks frame rates under QEMU, and even an idle-priority build beside them cost frames
# (jmuxer dropped 3 of 76 in CI). The lane starts when they are done.
stage "tests: ci (unit, integration, browser, lab)" run_ctest ci

if [ "${PRINTCAST_SERIAL:-0}" != 1 ]; then
  if [ -n "$sysroot_pid" ]; then
    # The cross builds need their sysroots; the sysroots log says why if they failed.
    stage "cross: sysroots (background, waited for)" wait "$sysroot_pid" || { cat "$logs/cross-sysroots.log"; exit 1; }
    sysroot_pid=""
  fi
  chrt --idle 0 bash -c "$(declare -f stage stages_now stages_record build lane_run); \
    $(declare -p lane_jobs logs jobs); lane_run" &
  lane_pid=$!
fi

stage "wait: asan build" lane_wait asan
stage "tests: asan (unit)" run_ctest asan ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
stage "wait: tsan build" lane_wait tsan
stage "tests: tsan (unit)" run_ctest tsan TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

if [ "$fuzz" = 1 ]; then
  fuzz_run() {
    PRINTCAST_FUZZ_SECONDS=20 scripts/fuzz.sh --run-only 2>&1 | tee "$logs/fuzz.log"
    STAGE_DETAIL="$(grep -c '^-- fuzz: fuzz_' "$logs/fuzz.log") targets, 20 s each, two at a time"
  }
  stage "wait: fuzz build" lane_wait fuzz
  stage "fuzz (libFuzzer)" fuzz_run
fi

if [ "$cross" = 1 ]; then
  if [ -n "$sysroot_pid" ]; then wait "$sysroot_pid"; fi
  for arch in armhf aarch64 riscv64; do
    stage "wait: cross $arch build" lane_wait "cross-$arch"
    scripts/cross-test.sh --test-only "$arch"
  done
fi
if [ -n "$lane_pid" ]; then wait "$lane_pid"; lane_pid=""; fi
if command -v ccache >/dev/null 2>&1; then
  ccache -s | grep -iE '^ *(hits|misses|cacheable)' || true
fi
