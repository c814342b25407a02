#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Memory benchmark (issue 15): the streamer's resident memory on the virtual board, for 256 MB
# printers. Two scenarios, each a fresh streamer:
#   idle      `make run`'s defaults (640x480 test pattern, printer screen, rings), nobody
#             watching, measured after MEMORY_SETTLE seconds (default 15: past the 10 s after
#             which an unwatched H.264 encoder gives its memory back)
#   720p      1280x720 at 30 fps with 10 viewers: 4 MJPEG (/stream), 3 /flv and 3 /stream.mp4,
#             measured over MEMORY_WINDOW seconds (default 10) after a 3 s warm-up
# Prints, per scenario, the largest of one sample per second of VmRSS and its split into
# anonymous memory (the streamer's own: heap, stacks, encoder pictures) and file pages (code of
# the executable and the shared libraries, shared with every other process that maps them),
# VmHWM (the peak) and the thread count, beside the targets: idle under 12 MB, 720p with 10
# viewers under 24 MB. Never fails on the numbers.
#
#   bench/memory.sh BUILD_DIR [STREAMER]
#
# STREAMER (default: BUILD_DIR's printcast-streamer) may be another build's, e.g. the static image
# of the pc-static preset (build/pc-static/apps/streamer/printcast-streamer): a static binary maps
# only the code it links, as the printers' images do, where a PC's shared libraries bring in
# whole pages of code the streamer never calls (GnuTLS for libmicrohttpd, among others).
set -euo pipefail

BUILD=${1:?usage: bench/memory.sh BUILD_DIR [STREAMER]}
SETTLE=${MEMORY_SETTLE:-15}
WINDOW=${MEMORY_WINDOW:-10}
STREAMER=${2:-$BUILD/apps/streamer/printcast-streamer}
LOAD=$BUILD/bench/printcast-fanout-load
for exe in "$STREAMER" "$LOAD"; do
  [[ -x $exe ]] || { echo "memory: $exe is not built (build $BUILD first)" >&2; exit 2; }
done
command -v curl >/dev/null || { echo "memory: curl is missing (scripts/install-deps.sh test)" >&2; exit 2; }

# shellcheck source=bench/lib/streamer.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/streamer.sh"
bench_init memory "$STREAMER"

start_streamer() {
  printf '{}\n' >"$WORK/app.json"
  mkdir -p "$WORK/timelapse"
  bench_start_streamer --board virtual --flv-port -1 --ws-port -1 --ring-name "printcast-memory-$$" \
    --config "$WORK/app.json" --timelapse-folder "$WORK/timelapse" --log-level warn "$@"
}

# sample SECONDS: one /proc sample a second; prints the sample with the largest VmRSS as
# "rss anon file hwm threads" (kB, kB, kB, kB, count).
sample() {
  local best="0 0 0 0 0" line
  for _ in $(seq "$1"); do
    sleep 1
    line=$(awk '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 } /^RssShmem:/ { f += $2 }
                /^VmHWM:/ { h = $2 } /^Threads:/ { t = $2 } END { print r, a, f, h, t }' "/proc/$STREAMER_PID/status")
    if (("${line%% *}" > "${best%% *}")); then best=$line; fi
  done
  echo "$best"
}

row() {  # row NAME "rss anon file hwm threads" TARGET_MB
  read -r rss anon file hwm threads <<<"$2"
  awk -v n="$1" -v r="$rss" -v a="$anon" -v f="$file" -v h="$hwm" -v t="$threads" -v g="$3" 'BEGIN {
    printf "%-34s %7.1f %8.1f %8.1f %8.1f %8d   < %d MB: %s\n", n, r / 1024, a / 1024, f / 1024, h / 1024, t, g,
      (r / 1024 < g) ? "met" : "not met" }'
}

kind=$(file -b "$STREAMER" | grep -q 'statically linked' && echo static || echo "shared libraries")
echo "streamer memory on the virtual board: $STREAMER ($kind; $(uname -m), $(nproc) cores)"
printf '%-34s %7s %8s %8s %8s %8s   %s\n' scenario RSS_MB anon_MB file_MB peak_MB threads target

start_streamer
sleep "$SETTLE"
row "idle (640x480, nobody watching)" "$(sample 5)" 12
bench_stop_streamer

start_streamer --resolution 1280x720 --desired-fps 30 --bitrate 2000
viewers=()
for _ in 1 2 3 4; do
  curl -s -o /dev/null --max-time $((WINDOW + 4)) "http://127.0.0.1:$STREAM_PORT/stream" &
  viewers+=($!)
done
"$LOAD" --port "$STREAM_PORT" --path /flv --kind flv --clients 3 --warmup 1 --duration $((WINDOW + 3)) \
  >"$WORK/flv.txt" &
viewers+=($!)
"$LOAD" --port "$STREAM_PORT" --path /stream.mp4 --kind fmp4 --clients 3 --warmup 1 \
  --duration $((WINDOW + 3)) >"$WORK/fmp4.txt" &
viewers+=($!)
sleep 3
row "720p30, 10 viewers (4 MJPEG, 6 H.264)" "$(sample "$WINDOW")" 24
wait "${viewers[@]}" || true
for f in flv fmp4; do
  grep -q '^connected=3$' "$WORK/$f.txt" || echo "memory: not every /$f viewer connected: $(tr '\n' ' ' <"$WORK/$f.txt")"
done
bench_stop_streamer
