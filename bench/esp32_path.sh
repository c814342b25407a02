#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The ESP32 relay's path: 640x480 JPEGs pushed by a camera in, H.264 out. printcast against the
# ESP32 system's own pipeline, in the same run.
#
#   bench/esp32_path.sh BUILD_DIR
#
#  (a) printcast: printcast-streamer --source ws-push; tools/mock-camera.py pushes ESP32_FRAMES
#      (default 300) pre-made JPEGs in a loop as fast as the connection takes them; the ingest
#      keeps the newest two, so what comes out is what the decode + encode path sustains.
#      printcast-flv-count reads /flv, discards ESP32_WARMUP s (default 1), then counts the H.264
#      frames of ESP32_DURATION s (default 8) and the streamer's CPU time in that window.
#      The pusher's CPU is not counted (it is the camera).
#  (b) the ESP32 system: ffmpeg -f image2pipe -c:v mjpeg -i - -c:v libx264 -preset ultrafast
#      -tune zerolatency -f mpegts, fed the same JPEGs from a file, as fast as it takes them; wall
#      time and user+sys CPU of the process (bash `time`).
# Prints frames/s and CPU ms per frame for each and the ratio (target: printcast >= 1.3x the
# throughput). Never fails on slowness.
set -euo pipefail

BUILD=${1:?usage: bench/esp32_path.sh BUILD_DIR}
FRAMES=${ESP32_FRAMES:-300}
WARMUP=${ESP32_WARMUP:-1}
DURATION=${ESP32_DURATION:-8}
SIZE=640x480
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STREAMER=$BUILD/apps/streamer/printcast-streamer
COUNT=$BUILD/bench/printcast-flv-count
PUSHER=$HERE/../tools/mock-camera.py
for exe in "$STREAMER" "$COUNT"; do
  [[ -x $exe ]] || { echo "esp32_path: $exe is not built (build $BUILD first)" >&2; exit 2; }
done
command -v ffmpeg >/dev/null || { echo "esp32_path: ffmpeg is not installed" >&2; exit 2; }
/usr/bin/python3 -c 'import websockets' 2>/dev/null ||
  { echo "esp32_path: needs python3-websockets (scripts/install-deps.sh test)" >&2; exit 2; }

# shellcheck source=bench/lib/streamer.sh
. "$HERE/lib/streamer.sh"
bench_init esp32_path "$STREAMER"
kv() { sed -n "s/^$2=//p" "$1"; }

echo "== $FRAMES JPEGs of $SIZE (ffmpeg testsrc2, mjpeg -q:v 6)" >&2
ffmpeg -nostdin -loglevel error -f lavfi -i "testsrc2=size=$SIZE:rate=30" -frames:v "$FRAMES" \
  -f image2pipe -c:v mjpeg -q:v 6 "$WORK/frames.mjpeg"
jpeg_kb=$(awk -v b="$(stat -c %s "$WORK/frames.mjpeg")" -v n="$FRAMES" 'BEGIN { printf "%.1f", b / n / 1024 }')

echo "== printcast: ws-push -> /flv for ${DURATION}s after ${WARMUP}s" >&2
bench_start_streamer --board virtual --source ws-push --desired-fps 30 --no-display --flv-port -1 \
  --ws-port -1 --no-ring --log-level warn
"$PUSHER" "ws://127.0.0.1:$STREAM_PORT/ingest" --from "$WORK/frames.mjpeg" --fps 0 \
  --seconds $((WARMUP + DURATION + 5)) >"$WORK/pusher.out" 2>&1 &
"$COUNT" --port "$STREAM_PORT" --control-port "$CONTROL_PORT" --pid "$STREAMER_PID" \
  --warmup "$WARMUP" --duration "$DURATION" >"$WORK/count.out"
pushed=$(curl -s "http://127.0.0.1:$CONTROL_PORT/status" |
  /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["camera"]["ingest"]["messages"])' || true)
bench_stop_streamer
pc_fps=$(kv "$WORK/count.out" fps)
pc_cpu=$(kv "$WORK/count.out" cpu_ms_per_frame)

echo "== ESP32 system: ffmpeg image2pipe mjpeg -> libx264 ultrafast zerolatency -> mpegts, $FRAMES frames" >&2
TIMEFORMAT='%R %U %S'
{ time ffmpeg -nostdin -loglevel error -f image2pipe -c:v mjpeg -i - -c:v libx264 -preset ultrafast \
    -tune zerolatency -f mpegts -y /dev/null <"$WORK/frames.mjpeg" 2>/dev/null; } 2>"$WORK/ffmpeg.time"
read -r wall user sys <"$WORK/ffmpeg.time"
ff_fps=$(awk -v n="$FRAMES" -v w="$wall" 'BEGIN { printf "%.1f", n / w }')
ff_cpu=$(awk -v n="$FRAMES" -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", 1000 * (u + s) / n }')
ratio=$(awk -v a="$pc_fps" -v b="$ff_fps" 'BEGIN { printf "%.2f", a / b }')
cpu_ratio=$(awk -v a="$pc_cpu" -v b="$ff_cpu" 'BEGIN { printf "%.2f", a / b }')

echo
echo "ESP32 path: $SIZE JPEGs (${jpeg_kb} KiB each) in, H.264 out ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-44s %10s %14s\n' "pipeline" "frames/s" "CPU ms/frame"
printf '%-44s %10s %14s\n' "printcast ws-push -> decode -> x264 -> /flv" "$pc_fps" "$pc_cpu"
printf '%-44s %10s %14s\n' "ffmpeg image2pipe -> libx264 -> mpegts" "$ff_fps" "$ff_cpu"
echo "throughput ratio printcast/ffmpeg: ${ratio}x (target >= 1.3x); CPU per frame ratio: ${cpu_ratio}x"
echo "(the pusher sent ${pushed:-?} messages in all; the ingest keeps the newest two, so printcast's rate is"
echo " its decode+encode rate, and its CPU includes receiving every message, dropped ones too)"
