#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs every benchmark against a build: the codec micro-benchmarks, then the end-to-end FLV one.
#
#   bench/run.sh BUILD_DIR        (make bench runs it on build/release)
#
# Prints numbers only: nothing here fails because something is slow.
set -euo pipefail

BUILD=${1:?usage: bench/run.sh BUILD_DIR}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
echo "printcast benchmarks: $BUILD, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC')"

CODECS=$BUILD/bench/printcast-bench-codecs
if [[ -x $CODECS ]]; then
  echo
  echo "== codecs (printcast-bench-codecs)"
  "$CODECS" --benchmark_min_time="${BENCH_MIN_TIME:-0.5}"
else
  echo "== codecs: $CODECS is not built; skipped"
fi

echo
echo "== end to end: /flv vs ffmpeg (bench/e2e_flv.sh)"
"$HERE/e2e_flv.sh" "$BUILD"

echo
echo "== WebSocket fan-out: /ws vs /flv, 1/10/100 clients (bench/ws_fanout.sh)"
"$HERE/ws_fanout.sh" "$BUILD"
