#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build the libFuzzer targets (tests/fuzz) with clang + ASan/UBSan in build/fuzz, then run each
# for PRINTCAST_FUZZ_SECONDS (default 20) seeded from tests/fuzz/corpus/<target>/. New inputs go
# to build/fuzz/corpus/<target>/ (the committed seeds are not touched); a crash leaves its input
# in build/fuzz/artifacts/ and fails the script.
# Targets run PRINTCAST_FUZZ_JOBS at a time (default: the number of cores; each fuzzer is one
# process on one core, so two cores fuzz two targets for the same wall time as one).
#   scripts/fuzz.sh [--build-only|--run-only] [target...]      default: every target
set -euo pipefail
mode=all
case "${1:-}" in
  --build-only) mode=build; shift ;;
  --run-only) mode=run; shift ;;
esac
cd "$(dirname "$0")/.."
seconds=${PRINTCAST_FUZZ_SECONDS:-20}
cc=${PRINTCAST_FUZZ_CC:-clang-14}
cxx=${PRINTCAST_FUZZ_CXX:-clang++-14}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_websocket fuzz_h264 fuzz_mjpeg_dht fuzz_form fuzz_settings fuzz_http_range fuzz_http_access fuzz_mp4_summary fuzz_mjpeg_pull fuzz_rtp_h264 fuzz_rtsp fuzz_rtmp fuzz_h264_decode fuzz_lan_mode fuzz_flv fuzz_anycubic_video fuzz_onvif)

fuzz_jobs=${PRINTCAST_FUZZ_JOBS:-$(nproc)}

if [ "$mode" != run ]; then
  launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S . -B build/fuzz -G Ninja -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPRINTCAST_FUZZ=ON -DPRINTCAST_SANITIZE=address,undefined \
    -DPRINTCAST_BUILD_TESTS=OFF -DPRINTCAST_BUILD_BENCH=OFF "${launcher[@]}" >/dev/null
  cmake --build build/fuzz -j "$(nproc)" --target "${targets[@]}"
fi
[ "$mode" != build ] || exit 0

# run_one TARGET: fuzz it for $seconds; 0 without a finding, else the log's tail and 1.
run_one() {
  local t=$1 log=build/fuzz/$1.log
  mkdir -p "build/fuzz/corpus/$t" "tests/fuzz/corpus/$t"
  if ! ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "build/fuzz/tests/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="build/fuzz/artifacts/$t-" \
    "build/fuzz/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    return 1
  fi
}

mkdir -p build/fuzz/artifacts
failed=()
i=0
while [ "$i" -lt ${#targets[@]} ]; do
  batch=("${targets[@]:$i:$fuzz_jobs}")
  pids=()
  for t in "${batch[@]}"; do
    echo "== fuzz: $t (${seconds} s)"
    run_one "$t" &
    pids+=($!)
  done
  for j in "${!batch[@]}"; do
    t=${batch[$j]}
    if wait "${pids[$j]}"; then
      echo "-- fuzz: $t: $(grep -E "stat::number_of_executed_units" "build/fuzz/$t.log" | tr -s ' ' | cut -d' ' -f2) runs, no finding"
    else
      tail -n 60 "build/fuzz/$t.log" >&2
      echo "fuzz: $t found a bug: the input is in build/fuzz/artifacts/ (full log build/fuzz/$t.log)" >&2
      failed+=("$t")
    fi
  done
  i=$((i + fuzz_jobs))
done
[ ${#failed[@]} -eq 0 ] || { echo "fuzz: findings in ${failed[*]}" >&2; exit 1; }
echo "== fuzz: all ${#targets[@]} targets ran ${seconds} s without a finding"
