#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build the libFuzzer targets (tests/fuzz) with clang + ASan/UBSan in build/fuzz, then run each
# for PRINTCAST_FUZZ_SECONDS (default 20) seeded from tests/fuzz/corpus/<target>/. New inputs go
# to build/fuzz/corpus/<target>/ (the committed seeds are not touched); a crash leaves its input
# in build/fuzz/artifacts/ and fails the script.
#   scripts/fuzz.sh [target...]      default: every target
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${PRINTCAST_FUZZ_SECONDS:-20}
cc=${PRINTCAST_FUZZ_CC:-clang-14}
cxx=${PRINTCAST_FUZZ_CXX:-clang++-14}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_websocket fuzz_h264 fuzz_mjpeg_dht fuzz_form fuzz_settings fuzz_http_range)

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B build/fuzz -G Ninja -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPRINTCAST_FUZZ=ON -DPRINTCAST_SANITIZE=address,undefined \
  -DPRINTCAST_BUILD_TESTS=OFF -DPRINTCAST_BUILD_BENCH=OFF "${launcher[@]}" >/dev/null
cmake --build build/fuzz -j "$(nproc)" --target "${targets[@]}"

mkdir -p build/fuzz/artifacts
for t in "${targets[@]}"; do
  echo "== fuzz: $t (${seconds} s)"
  mkdir -p "build/fuzz/corpus/$t" "tests/fuzz/corpus/$t"
  log=build/fuzz/$t.log
  if ! ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "build/fuzz/tests/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="build/fuzz/artifacts/$t-" \
    "build/fuzz/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: $t found a bug: the input is in build/fuzz/artifacts/ (full log $log)" >&2
    exit 1
  fi
  grep -E "^#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb" "$log" || true
done
echo "== fuzz: all targets ran ${seconds} s without a finding"
