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
#   bench/memory.sh BUILD_DIR
set -euo pipefail

BUILD=${1:?usage: bench/memory.sh BUILD_DIR}
SETTLE=${MEMORY_SETTLE:-15}
WINDOW=${MEMORY_WINDOW:-10}
STREAMER=$BUILD/apps/streamer/printcast-streamer
LOAD=$BUILD/bench/printcast-fanout-load
for exe in "$STREAMER" "$LOAD"; do
  [[ -x $exe ]] || { echo "memory: $exe is not built (build $BUILD first)" >&2; exit 2; }
done
command -v curl >/dev/null || { echo "memory: curl is missing (scripts/install-deps.sh test)" >&2; exit 2; }

WORK=$(mktemp -d)
STREAMER_PID=""
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
  jobs -p | xargs -r kill 2>/dev/null || true
  if [[ -n $STREAMER_PID ]]; then
    kill "$STREAMER_PID" 2>/dev/null || true
    wait "$STREAMER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

start_streamer() {
  printf '{}\n' >"$WORK/app.json"
  mkdir -p "$WORK/timelapse"
  "$STREAMER" --board virtual --port 0 --control-port 0 --flv-port -1 --ws-port -1 \
    --ring-name "printcast-memory-$$" --config "$WORK/app.json" --timelapse-folder "$WORK/timelapse" \
    --log-level warn "$@" >"$WORK/streamer.out" 2>"$WORK/streamer.err" &
  STREAMER_PID=$!
  STREAM_PORT=""
  for _ in $(seq 100); do
    STREAM_PORT=$(sed -n 's|^ *status  *http://[0-9.]*:\([0-9]*\)/status.*|\1|p' "$WORK/streamer.out")
    [[ -n $STREAM_PORT ]] && break
    kill -0 "$STREAMER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z $STREAM_PORT ]]; then
    echo "memory: the streamer did not start:" >&2
    cat "$WORK/streamer.out" "$WORK/streamer.err" >&2
    exit 1
  fi
}

stop_streamer() {
  kill "$STREAMER_PID"
  wait "$STREAMER_PID" || true
  STREAMER_PID=""
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

echo "streamer memory on the virtual board ($(uname -m), $(nproc) cores)"
printf '%-34s %7s %8s %8s %8s %8s   %s\n' scenario RSS_MB anon_MB file_MB peak_MB threads target

start_streamer
sleep "$SETTLE"
row "idle (640x480, nobody watching)" "$(sample 5)" 12
stop_streamer

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
stop_streamer
