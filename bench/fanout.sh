#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fan-out benchmark: the streamer's CPU and memory with 1, 10 and 100 loopback clients of each
# H.264 output (/flv, /stream.mp4, /ws) at 720p30 from the test pattern.
#
#   bench/fanout.sh BUILD_DIR
#
# One streamer per output (paced 30 fps, 1280x720, 2 Mbit/s); printcast-fanout-load opens N
# clients, discards FANOUT_WARMUP seconds (default 2), then counts access units delivered to all
# clients in FANOUT_DURATION seconds (default 8) and the streamer's utime+stime and VmRSS.
# "us/frame" is the streamer's CPU per delivered access unit (all clients); "marginal" is the
# extra CPU per extra delivered access unit going from 1 to N clients — the fan-out's own cost,
# without the encoder. /api/stats "bytes_copied" per delivered frame (when the output reports
# it) shows whether payload bytes are copied per client. Prints a table; never fails on slowness.
set -euo pipefail

BUILD=${1:?usage: bench/fanout.sh BUILD_DIR}
WARMUP=${FANOUT_WARMUP:-2}
DURATION=${FANOUT_DURATION:-8}
COUNTS=${FANOUT_CLIENTS:-"1 10 100"}
STREAMER=$BUILD/apps/streamer/printcast-streamer
LOAD=$BUILD/bench/printcast-fanout-load
for exe in "$STREAMER" "$LOAD"; do
  [[ -x $exe ]] || { echo "fanout: $exe is not built (build $BUILD first)" >&2; exit 2; }
done

# shellcheck source=bench/lib/streamer.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/streamer.sh"
bench_init fanout "$STREAMER"

start_streamer() {
  bench_start_streamer --board virtual --desired-fps 30 --resolution 1280x720 --bitrate 2000 \
    --no-display --flv-port -1 --ws-port -1 --no-ring --log-level warn
}

value() { sed -n "s/^$1=//p" "$2"; }

echo "fan-out at 1280x720 30 fps, ${DURATION}s windows ($(nproc) cores)"
printf '%-12s %7s %9s %9s %9s %10s %10s %9s\n' output clients fps/client cpu% us/frame marginal_us rss_MB conn
for spec in flv:/flv fmp4:/stream.mp4 ws:/ws; do
  kind=${spec%%:*}
  path=${spec#*:}
  start_streamer
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$STREAM_PORT$path" || true)
  if [[ $kind != ws && $code != 200 && $code != 000 ]] || [[ $kind == ws && $code == 404 ]]; then
    printf '%-12s not served by this build (HTTP %s)\n' "$path" "$code"
    bench_stop_streamer
    continue
  fi
  base_cpu=""
  base_frames=""
  for n in $COUNTS; do
    "$LOAD" --port "$STREAM_PORT" --path "$path" --kind "$kind" --clients "$n" --pid "$STREAMER_PID" \
      --warmup "$WARMUP" --duration "$DURATION" >"$WORK/load.txt"
    cpu=$(value cpu_percent "$WORK/load.txt")
    frames=$(value frames "$WORK/load.txt")
    marginal="-"
    if [[ -z $base_cpu ]]; then
      base_cpu=$cpu
      base_frames=$frames
    elif ((frames > base_frames)); then
      marginal=$(awk -v c="$cpu" -v b="$base_cpu" -v f="$frames" -v bf="$base_frames" -v d="$DURATION" \
        'BEGIN { printf "%.1f", (c - b) / 100 * d * 1e6 / (f - bf) }')
    fi
    printf '%-12s %7s %9s %9s %9s %10s %10s %9s\n' "$path" "$n" "$(value fps_per_client "$WORK/load.txt")" "$cpu" \
      "$(value cpu_us_per_delivered_frame "$WORK/load.txt")" "$marginal" \
      "$(awk -v k="$(value rss_kb "$WORK/load.txt")" 'BEGIN { printf "%.1f", k / 1024 }')" \
      "$(value connected "$WORK/load.txt")"
  done
  bench_stop_streamer
done
