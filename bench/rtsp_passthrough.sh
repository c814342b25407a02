#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# RTSP passthrough: an IP camera's 1080p30 H.264 to N viewers of FLV, without decode or re-encode.
# printcast against the RTSP->HLS dashboard system's way (one ffmpeg per viewer), in the same run.
#
#   bench/rtsp_passthrough.sh BUILD_DIR
#
# The camera: tests/integration/rtsp_server.py (gst-rtsp-server, x264 ultrafast/zerolatency,
# 2 slices a picture, one IDR a second) at 1920x1080 30 fps, pattern RTSP_PATTERN (default snow,
# which fills RTSP_BITRATE kbit/s, default 4000: an IP camera's main stream), SPS/PPS only in the
# SDP (RTSP_CONFIG_INTERVAL, default 0, as many IP cameras). Not -1: rtph264pay then repeats
# SPS+PPS before each of an IDR's two slices, and ffmpeg's parser cuts the picture there, muxing
# two FLV tags per IDR picture (31 "frames" a second for 30 pictures), which would flatter its
# per-AU cost. Every RTSP session shares the one encoder. The server's CPU is not counted, but its
# x264 (about three quarters of a core at 1080p30) competes for the cores; its CPU over each
# window is printed, beside each side's AU rates (whether the camera kept 30 fps).
#  (a) printcast: one printcast-streamer --source rtsp://... (one RTSP session); for N in
#      RTSP_VIEWERS (default "1 10"): printcast-flv-count reads /flv (counts the access units
#      of RTSP_DURATION s, default 8, after RTSP_WARMUP s, default 3) plus N-1 plain readers
#      (curl to /dev/null).
#  (b) the dashboard's way: N processes of `ffmpeg -rtsp_transport tcp -i URL -c copy -f flv -`
#      (N RTSP sessions), each writing into a pipe read by cat; access units from each one's
#      -progress frame= count (every 0.1 s) at the window's ends.
# CPU: user+sys of the streamer, or of the N ffmpegs together, over the same-length window, in
# nanoseconds from /proc/PID/task/*/schedstat of the live threads (stat's utime+stime counts 10 ms
# ticks: too coarse for the streamer's 55-100 ms in 8 s; flv-count's --pid figure, from those ticks,
# is printed as a check). Readers (flv-count, curl, cat) are not counted on either side.
# Prints, per N: CPU ms per delivered access unit (CPU / (AUs per viewer * N)) for each and the
# ratio ffmpeg/printcast, printcast's CPU per AU received from the camera, and the AU rates each
# side got. Never fails on slowness; exits 2 when a tool is missing.
set -euo pipefail

BUILD=${1:?usage: bench/rtsp_passthrough.sh BUILD_DIR}
WARMUP=${RTSP_WARMUP:-3}
DURATION=${RTSP_DURATION:-8}
VIEWERS=${RTSP_VIEWERS:-1 10}
PATTERN=${RTSP_PATTERN:-snow}
BITRATE=${RTSP_BITRATE:-4000}
CONFIG_INTERVAL=${RTSP_CONFIG_INTERVAL:-0}
SIZE=1920x1080
FPS=30
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STREAMER=$BUILD/apps/streamer/printcast-streamer
COUNT=$BUILD/bench/printcast-flv-count
for exe in "$STREAMER" "$COUNT"; do
  [[ -x $exe ]] || { echo "rtsp_passthrough: $exe is not built (build $BUILD first)" >&2; exit 2; }
done
for tool in ffmpeg curl; do
  command -v "$tool" >/dev/null || { echo "rtsp_passthrough: $tool is not installed" >&2; exit 2; }
done
[[ -r /proc/self/schedstat ]] ||
  { echo "rtsp_passthrough: needs /proc/PID/schedstat (a kernel with CONFIG_SCHED_INFO)" >&2; exit 2; }

# shellcheck source=bench/lib/streamer.sh
. "$HERE/lib/streamer.sh"
bench_init rtsp_passthrough "$STREAMER"
kv() { sed -n "s/^$2=//p" "$1"; }
calc() { awk "BEGIN { $1 }"; }  # (keep `>` inside parentheses: a bare one redirects printf)

# utime+stime (s) of one process, dead threads included (for the server: its CPU is large).
stat_cpu_s() {
  local rest
  rest=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / t }' <<<"$rest"
}
# Stops the measuring when the RTSP server has died (see the ffmpeg rounds).
server_alive() {
  kill -0 "$SERVER_PID" 2>/dev/null && return 0
  echo "rtsp_passthrough: the RTSP server died ($1); the remaining rounds are skipped:" >&2
  tail -n 3 "$WORK/rtsp-camera.err" >&2
  return 1
}
# The newest frame= of an ffmpeg -progress file (0 before its first report).
progress_frames() { { sed -n 's/^frame=//p' "$1" 2>/dev/null || true; } | tail -n1 | grep . || echo 0; }

echo "== camera: gst-rtsp-server $SIZE ${FPS} fps, pattern $PATTERN, x264 $BITRATE kbit/s" >&2
bench_rtsp_camera --size "$SIZE" --fps "$FPS" --pattern "$PATTERN" --bitrate "$BITRATE" \
  --config-interval "$CONFIG_INTERVAL"
SERVER_PID=$RTSP_CAMERA_PID URL=$RTSP_CAMERA_URL

# Access units the N ffmpegs of this round have muxed so far.
frames_now() {
  local i total=0
  for ((i = 1; i <= $1; i++)); do total=$((total + $(progress_frames "$WORK/ff$1.$i.progress"))); done
  echo "$total"
}
declare -A R  # results, keyed "side.N.name"
v() { echo "${R[$1]:--}"; }  # a result, or - when its round did not run
drop_round() {                # forget side $1's round $2 (the camera died during it)
  local k
  for k in "${!R[@]}"; do [[ $k != "$1.$2."* ]] || unset "R[$k]"; done
}

echo "== printcast: one RTSP session, /flv to N viewers (${DURATION}s after ${WARMUP}s)" >&2
bench_start_streamer --board virtual --source "$URL" --desired-fps "$FPS" --no-display \
  --flv-port -1 --ws-port -1 --no-ring --log-level warn
for _ in $(seq 100); do  # the camera connected (its first access unit arrived)
  curl -s "http://127.0.0.1:$CONTROL_PORT/status" | grep -q '"signal": *true' && break
  sleep 0.1
done
for n in $VIEWERS; do
  readers=()
  for ((i = 1; i < n; i++)); do
    curl -s -o /dev/null "http://127.0.0.1:$STREAM_PORT/flv" &
    readers+=($!)
  done
  "$COUNT" --port "$STREAM_PORT" --control-port "$CONTROL_PORT" --pid "$STREAMER_PID" \
    --warmup "$WARMUP" --duration "$DURATION" >"$WORK/pc$n.out" &
  counter=$!
  sleep "$WARMUP"
  t0=$EPOCHREALTIME c0=$(bench_cpu_ns "$STREAMER_PID") s0=$(stat_cpu_s "$SERVER_PID")
  sleep "$DURATION"
  t1=$EPOCHREALTIME c1=$(bench_cpu_ns "$STREAMER_PID") s1=$(stat_cpu_s "$SERVER_PID")
  wait "$counter" || echo "rtsp_passthrough: printcast-flv-count failed ($n viewers)" >&2
  if ((${#readers[@]})); then  # (a bare `wait` would wait for the server and the streamer too)
    kill "${readers[@]}" 2>/dev/null || true
    wait "${readers[@]}" 2>/dev/null || true
  fi
  out=$WORK/pc$n.out
  fps=$(kv "$out" fps) secs=$(kv "$out" seconds) camera=$(kv "$out" camera)
  frames=$(kv "$out" frames) bytes=$(kv "$out" bytes) tick_s=$(kv "$out" cpu_s)
  fps=${fps:-0} frames=${frames:-0}
  R[pc.$n.fps]=$fps
  R[pc.$n.in]=$(calc "printf \"%.1f\", ${camera:-0} / ${secs:-1}")
  R[pc.$n.kbps]=$(calc "printf \"%.0f\", ($frames > 0 ? 8 * $fps * ${bytes:-0} / $frames / 1000 : 0)")
  R[pc.$n.dropped]=$(kv "$out" dropped)
  R[pc.$n.cpu_pct]=$(calc "printf \"%.1f\", 100 * ($c1 - $c0) / 1e9 / ($t1 - $t0)")
  # CPU per second / AUs per second: independent of the small offset between the two windows.
  R[pc.$n.ms]=$(calc "r = $fps * $n; printf \"%.3f\", (r > 0 ? 1000 * ($c1 - $c0) / 1e9 / ($t1 - $t0) / r : 0)")
  R[pc.$n.ms_in]=$(calc "r = ${R[pc.$n.in]}; printf \"%.3f\", (r > 0 ? 1000 * ($c1 - $c0) / 1e9 / ($t1 - $t0) / r : 0)")
  R[pc.$n.tick_ms]=$(calc "printf \"%.3f\", ($frames > 0 ? 1000 * ${tick_s:-0} / $frames / $n : 0)")
  R[pc.$n.server_pct]=$(calc "printf \"%.0f\", 100 * ($s1 - $s0) / ($t1 - $t0)")
  server_alive "printcast, $n viewers" || { drop_round pc "$n"; break; }
done
bench_stop_streamer
sleep 1  # the server unprepares the shared media once its last session is gone

echo "== ffmpeg: N x (ffmpeg -rtsp_transport tcp -i URL -c copy -f flv -) (${DURATION}s after ${WARMUP}s)" >&2
for n in $VIEWERS; do
  kill -0 "$SERVER_PID" 2>/dev/null || break
  ffmpegs=()
  cats=()
  for ((i = 1; i <= n; i++)); do
    mkfifo "$WORK/ff$n.$i.fifo"
    cat "$WORK/ff$n.$i.fifo" >/dev/null &
    cats+=($!)
    ffmpeg -nostdin -loglevel error -stats_period 0.1 -progress "$WORK/ff$n.$i.progress" \
      -rtsp_transport tcp -i "$URL" -c copy -f flv - >"$WORK/ff$n.$i.fifo" 2>"$WORK/ff$n.$i.err" &
    ffmpegs+=($!)
    # Staggered: gst-rtsp-server 1.22 sometimes aborts (gst_rtsp_media_get_rates: assertion
    # failed) when ten sessions set up its shared media at once. The first one streams first.
    if ((i == 1)); then
      for _ in $(seq 100); do [[ -s $WORK/ff$n.1.progress ]] && break; sleep 0.1; done
    else
      sleep 0.1
    fi
  done
  sleep "$WARMUP"
  t0=$EPOCHREALTIME c0=$(bench_cpu_ns "${ffmpegs[@]}") f0=$(frames_now "$n") s0=$(stat_cpu_s "$SERVER_PID")
  sleep "$DURATION"
  t1=$EPOCHREALTIME c1=$(bench_cpu_ns "${ffmpegs[@]}") f1=$(frames_now "$n") s1=$(stat_cpu_s "$SERVER_PID")
  alive=0
  for p in "${ffmpegs[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
  kill "${ffmpegs[@]}" 2>/dev/null || true
  wait "${ffmpegs[@]}" 2>/dev/null || true
  wait "${cats[@]}" 2>/dev/null || true
  ((alive == n)) || { echo "rtsp_passthrough: only $alive of $n ffmpegs lasted the window:" >&2
                      cat "$WORK"/ff"$n".*.err >&2; }
  R[ff.$n.fps]=$(calc "printf \"%.1f\", ($f1 - $f0) / $n / ($t1 - $t0)")
  R[ff.$n.cpu_pct]=$(calc "printf \"%.1f\", 100 * ($c1 - $c0) / 1e9 / ($t1 - $t0)")
  R[ff.$n.ms]=$(calc "f = $f1 - $f0; printf \"%.3f\", (f > 0 ? 1000 * ($c1 - $c0) / 1e9 / f : 0)")
  R[ff.$n.server_pct]=$(calc "printf \"%.0f\", 100 * ($s1 - $s0) / ($t1 - $t0)")
  server_alive "ffmpeg, $n viewers" || { drop_round ff "$n"; break; }
  sleep 1
done

echo
echo "RTSP passthrough: $SIZE ${FPS} fps H.264 ($PATTERN, ~$(v "pc.${VIEWERS%% *}.kbps") kbit/s) from gst-rtsp-server to N FLV viewers"
echo "($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); CPU = user+sys of the streamer / of the N ffmpegs)"
printf '%7s %12s %12s %9s %12s %13s %13s %14s %14s\n' viewers "printcast" "ffmpeg" "ratio" \
  "printcast" "printcast AU/s" "ffmpeg AU/s" "CPU % printcast" "server CPU %"
printf '%7s %12s %12s %9s %12s %13s %13s %14s %14s\n' "" "ms/AU out" "ms/AU out" "ff/pc" \
  "ms/AU in" "in / viewer" "per viewer" "/ ffmpeg" "pc / ff"
for n in $VIEWERS; do
  ratio=-
  if [[ -n ${R[pc.$n.ms]:-} && -n ${R[ff.$n.ms]:-} ]]; then
    ratio=$(calc "a = ${R[pc.$n.ms]}; printf \"%.1fx\", (a > 0 ? ${R[ff.$n.ms]} / a : 0)")
  fi
  printf '%7s %12s %12s %9s %12s %13s %13s %14s %14s\n' "$n" "$(v "pc.$n.ms")" "$(v "ff.$n.ms")" "$ratio" \
    "$(v "pc.$n.ms_in")" "$(v "pc.$n.in") / $(v "pc.$n.fps")" "$(v "ff.$n.fps")" \
    "$(v "pc.$n.cpu_pct") / $(v "ff.$n.cpu_pct")" "$(v "pc.$n.server_pct") / $(v "ff.$n.server_pct")"
done
for n in $VIEWERS; do
  echo "printcast, $n viewer(s): /flv queues dropped $(v "pc.$n.dropped") AUs in the window;" \
    "by flv-count's --pid (10 ms ticks) $(v "pc.$n.tick_ms") ms/AU out"
done
echo "(ms/AU out = CPU / (AUs per viewer * viewers); printcast's AU/s: from the camera / to the counting"
echo " viewer. The server's CPU is not counted; its x264 and its N RTSP sessions share the $(nproc) cores.)"
