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
echo "== ESP32 path: pushed JPEGs in, H.264 out, vs the ESP32 system's ffmpeg pipeline (bench/esp32_path.sh)"
"$HERE/esp32_path.sh" "$BUILD"

echo
echo "== RTSP passthrough: a 1080p30 camera to 1 and 10 /flv viewers, vs one ffmpeg -c copy per viewer (bench/rtsp_passthrough.sh)"
"$HERE/rtsp_passthrough.sh" "$BUILD"

echo
echo "== camera dashboard: four 1080p30 RTSP cameras with HLS and /flv viewers, one streamer vs one ffmpeg -f hls per camera (bench/dashboard.sh)"
"$HERE/dashboard.sh" "$BUILD"

echo
echo "== RTSP out: a 720p30 camera relayed to 1/10/50 RTSP readers, vs gst-rtsp-server's shared media (bench/rtsp_server.sh)"
"$HERE/rtsp_server.sh" "$BUILD"

echo

echo "== fan-out: 1/10/100 clients of each H.264 output (bench/fanout.sh)"
"$HERE/fanout.sh" "$BUILD"

echo
echo "== memory: idle and 720p with 10 viewers, RSS split into anonymous and file pages (bench/memory.sh)"
"$HERE/memory.sh" "$BUILD"
# The static image, as printers run it (docs/benchmarks.md): when the pc-static preset was built.
STATIC=$HERE/../build/pc-static/apps/streamer/printcast-streamer
if [[ -x $STATIC ]]; then
  "$HERE/memory.sh" "$BUILD" "$STATIC"
else
  echo "static image: not built (scripts/make-sysroot.sh amd64 --static; cmake --preset pc-static;"
  echo "  cmake --build --preset pc-static --target printcast-streamer)"
fi

echo
echo "== glass-to-browser latency per output, headless Chromium (bench/glass/latency.mjs)"
if [[ -d $HERE/../tests/browser/node_modules/playwright-core && -x /usr/bin/chromium ]]; then
  node "$HERE/glass/latency.mjs" "$BUILD/apps/streamer/printcast-streamer" "${GLASS_SECONDS:-10}"
else
  echo "skipped: needs /usr/bin/chromium and tests/browser/node_modules (scripts/install-deps.sh test)"
fi

RING=$BUILD/bench/printcast-bench-ring-wakeup
echo
if [[ -x $RING ]]; then
  echo "== shared-memory ring wake-up latency (printcast-bench-ring-wakeup)"
  "$RING"
else
  echo "== ring wake-up: $RING is not built; skipped"
fi

COPY=$BUILD/bench/printcast-bench-fanout-copy
echo
if [[ -x $COPY ]]; then
  echo "== fan-out: heap bytes and time per client per access unit, /flv /stream.mp4 /ws (printcast-bench-fanout-copy)"
  "$COPY"
else
  echo "== fan-out copy: $COPY is not built; skipped"
fi

TIMELAPSE=$BUILD/bench/printcast-bench-timelapse
echo
if [[ -x $TIMELAPSE ]]; then
  echo "== timelapse assembly: 300 1080p JPEGs -> MP4 vs ffmpeg (printcast-bench-timelapse)"
  "$TIMELAPSE" --frames "${TIMELAPSE_FRAMES:-300}" --reps "${TIMELAPSE_REPS:-1}"
else
  echo "== timelapse assembly: $TIMELAPSE is not built; skipped"
fi
