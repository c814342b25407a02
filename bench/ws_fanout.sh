#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# WebSocket fan-out benchmark: the streamer (virtual board, 1280x720 at 30 fps) with 1, 10 and
# 100 loopback /ws clients, and the same with /flv clients as the peer in the same run. Prints
# the streamer's CPU per delivered frame and RSS, and the ws/flv ratio.
#
#   bench/ws_fanout.sh BUILD_DIR        env: WS_CLIENTS="1 10 100" WS_DURATION=6 WS_WARMUP=2
set -euo pipefail
BUILD=${1:?usage: bench/ws_fanout.sh BUILD_DIR}
STREAMER=$BUILD/apps/streamer/printcast-streamer
TOOL=$BUILD/bench/printcast-ws-fanout
for b in "$STREAMER" "$TOOL"; do [[ -x $b ]] || { echo "missing $b (build it first)" >&2; exit 1; }; done
log=$(mktemp)
"$STREAMER" --board virtual --resolution 1280x720 --desired-fps 30 --bitrate 2000 --no-display \
  --flv-port -1 --ws-port -1 --port 0 --control-port 0 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q "Press Ctrl+C" "$log" && break; sleep 0.1; done
port=$(sed -n 's|.*status *http://[0-9.]*:\([0-9]*\)/status.*|\1|p' "$log")
[[ -n $port ]] || { cat "$log"; exit 1; }
printf "%-8s %-5s %10s %12s %14s %10s %9s\n" clients proto fps/client cpu_percent cpu_ms/frame rss_kib ratio
for n in ${WS_CLIENTS:-1 10 100}; do
  declare -A ms
  for proto in flv ws; do
    flag=(); [[ $proto = flv ]] && flag=(--flv)
    out=$("$TOOL" --port "$port" --pid "$pid" --clients "$n" "${flag[@]}" --warmup "${WS_WARMUP:-2}" \
      --duration "${WS_DURATION:-6}")
    get() { sed -n "s/^$1=//p" <<<"$out"; }
    ms[$proto]=$(get cpu_ms_per_delivered_frame)
    ratio=""
    [[ $proto = ws ]] && ratio=$(awk -v a="${ms[ws]}" -v b="${ms[flv]}" 'BEGIN{ if (b > 0) printf "%.2f", a / b }')
    printf "%-8s %-5s %10s %12s %14s %10s %9s\n" "$n" "$proto" "$(get fps_per_client)" "$(get cpu_percent)" \
      "${ms[$proto]}" "$(get rss_kib)" "$ratio"
    sleep 1  # let the previous clients' connections close
  done
done
echo "(ratio = ws cpu_ms per delivered frame / flv's, same run; x264 encoding is included in both)"
