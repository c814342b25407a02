#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The RTSP->HLS camera dashboard's load (issue 11): four 1080p30 RTSP cameras, each watched by
# DASH_HLS HLS viewers (default 2) and DASH_FLV /flv viewers (default 2), served by one
# printcast-streamer with a `cameras` list, against the dashboard system's layout: one
# `ffmpeg -rtsp_transport tcp -i URL -c copy -f hls` process per camera writing
# stream_<n>/playlist.m3u8 into a folder that a web server serves. Same cameras, same viewers'
# HLS path (/hls/stream_<n>/playlist.m3u8), one run.
#
#   bench/dashboard.sh BUILD_DIR
#
# The cameras: tests/integration/rtsp_server.py (gst-rtsp-server) at 1920x1080 30 fps, pattern
# DASH_PATTERN (default snow: fills DASH_BITRATE kbit/s, default 4000, an IP camera's main stream),
# one slice a picture, SPS/PPS in band before every IDR (with them only in the SDP, ffmpeg's hls
# muxer writes segments its own HLS client cannot open: "non-existing PPS 0"). All four are RTSP sessions of the one shared media (one x264 encoder:
# four encoders would take more than this machine's two cores), so each side pulls four sessions
# exactly as from four cameras.
# Viewers (not counted on either side): HLS = `ffmpeg -i .../playlist.m3u8 -c copy -f null -`
# (ffmpeg's HLS client: playlist reloads and every segment); /flv = curl to /dev/null. The
# dashboard system has no FLV output: on its side only the HLS viewers run (printcast serves
# both). Its web server (python3 -m http.server here) is not counted either.
# Numbers, after DASH_WARMUP s (default 6) over DASH_DURATION s (default 10):
#   CPU: user+sys of the streamer / of the four ffmpegs, from /proc/PID/task/*/schedstat (ns);
#   RSS: the streamer's VmRSS / the sum of the four ffmpegs' VmRSS (at the window's end), and
#        the anonymous part (smaps_rollup) of each;
#   each camera's frame rate as received (printcast: /api/cameras fps; ffmpeg: -progress frame=).
# Targets (issue 11): printcast <= 0.5x the ffmpegs' CPU and <= 0.25x their RSS.
# Prints numbers; never fails on them. Exits 2 when a tool is missing.
set -euo pipefail

BUILD=${1:?usage: bench/dashboard.sh BUILD_DIR}
WARMUP=${DASH_WARMUP:-6}
DURATION=${DASH_DURATION:-10}
HLS_VIEWERS=${DASH_HLS:-2}
FLV_VIEWERS=${DASH_FLV:-2}
PATTERN=${DASH_PATTERN:-snow}
BITRATE=${DASH_BITRATE:-4000}
CAMERAS=4
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STREAMER=$BUILD/apps/streamer/printcast-streamer
[[ -x $STREAMER ]] || { echo "dashboard: $STREAMER is not built (build $BUILD first)" >&2; exit 2; }
for tool in ffmpeg curl python3; do
  command -v "$tool" >/dev/null || { echo "dashboard: $tool is not installed" >&2; exit 2; }
done

# shellcheck source=bench/lib/streamer.sh
. "$HERE/lib/streamer.sh"
bench_init dashboard "$STREAMER"
calc() { awk "BEGIN { $1 }"; }
rss_kib() {
  local p total=0
  for p in "$@"; do total=$((total + $(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0))); done
  echo "$total"
}
anon_kib() {
  local p total=0 a
  for p in "$@"; do
    a=$(awk '/^Anonymous:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    total=$((total + ${a:-0}))
  done
  echo "$total"
}
progress_frames() { { sed -n 's/^frame=//p' "$1" 2>/dev/null || true; } | tail -n1 | grep . || echo 0; }

echo "== cameras: gst-rtsp-server 1920x1080 30 fps, pattern $PATTERN, x264 $BITRATE kbit/s" >&2
bench_rtsp_camera --size 1920x1080 --fps 30 --pattern "$PATTERN" --bitrate "$BITRATE" --config-interval -1 --slices 1

# hls_viewers BASE_URL: DASH_HLS ffmpeg HLS clients per camera of BASE_URL/stream_<n>/playlist.m3u8.
viewers=()
hls_viewers() {
  local n i
  for ((n = 0; n < CAMERAS; n++)); do
    for ((i = 0; i < HLS_VIEWERS; i++)); do
      ffmpeg -nostdin -loglevel error -i "$1/stream_$n/playlist.m3u8" -c copy -f null - \
        2>>"$WORK/hls-viewers.err" &
      viewers+=($!)
    done
  done
}
stop_viewers() {
  ((${#viewers[@]})) || return 0
  kill "${viewers[@]}" 2>/dev/null || true
  wait "${viewers[@]}" 2>/dev/null || true
  viewers=()
}

# ---- printcast: one streamer, four cameras ----
# Camera 0 from the config's list, cameras 1-3 added through the control API one after the other
# (POST /api/cameras): gst-rtsp-server 1.22 can abort when several sessions set up its shared
# media at the same moment, which four cameras opening at start would do.
printf '{\n  "camera_port_base": -1,\n  "cameras": [{"id": "0", "name": "Camera 0", "source": "%s"}]\n}\n' \
  "$RTSP_CAMERA_URL" >"$WORK/cameras.json"
echo "== printcast: one streamer, $CAMERAS cameras, $HLS_VIEWERS HLS + $FLV_VIEWERS /flv viewers each" >&2
bench_start_streamer --board virtual --config "$WORK/cameras.json" --no-display --flv-port -1 --ws-port -1 \
  --no-ring --log-level warn
streaming() { curl -s "http://127.0.0.1:$CONTROL_PORT/api/cameras" | grep -o '"state": *"streaming"' | wc -l; }
for ((n = 0; n < CAMERAS; n++)); do
  if ((n > 0)); then
    curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
      -d "{\"id\": \"$n\", \"name\": \"Camera $n\", \"source\": \"$RTSP_CAMERA_URL\"}" \
      "http://127.0.0.1:$CONTROL_PORT/api/cameras"
  fi
  for _ in $(seq 200); do (($(streaming) > n)) && break; sleep 0.1; done
done
(($(streaming) == CAMERAS)) || { echo "dashboard: only $(streaming) of $CAMERAS cameras streaming:" >&2
                                 curl -s "http://127.0.0.1:$CONTROL_PORT/api/cameras" >&2; tail -n 5 "$WORK/rtsp-camera.err" >&2; }
hls_viewers "http://127.0.0.1:$STREAM_PORT/hls"
for ((n = 0; n < CAMERAS; n++)); do
  for ((i = 0; i < FLV_VIEWERS; i++)); do
    curl -s -o /dev/null "http://127.0.0.1:$STREAM_PORT/cam/$n/flv" &
    viewers+=($!)
  done
done
sleep "$WARMUP"
t0=$EPOCHREALTIME c0=$(bench_cpu_ns "$STREAMER_PID")
sleep "$DURATION"
t1=$EPOCHREALTIME c1=$(bench_cpu_ns "$STREAMER_PID")
pc_rss=$(rss_kib "$STREAMER_PID") pc_anon=$(anon_kib "$STREAMER_PID")
pc_threads=$(awk '/^Threads:/ { print $2 }' "/proc/$STREAMER_PID/status")
pc_fps=$(curl -s "http://127.0.0.1:$CONTROL_PORT/api/cameras" |
  python3 -c 'import json,sys; print(" ".join(str(c["fps"]) for c in json.load(sys.stdin)))')
stop_viewers
bench_stop_streamer
pc_cpu=$(calc "printf \"%.1f\", 100 * ($c1 - $c0) / 1e9 / ($t1 - $t0)")

# ---- the dashboard system's way: one ffmpeg -f hls per camera ----
echo "== ffmpeg: $CAMERAS x (ffmpeg -rtsp_transport tcp -i URL -c copy -f hls), $HLS_VIEWERS HLS viewers each" >&2
sleep 1  # the RTSP server unprepares the shared media once its last session is gone
mkdir -p "$WORK/www"
ffmpegs=()
for ((n = 0; n < CAMERAS; n++)); do
  mkdir -p "$WORK/www/stream_$n"
  ffmpeg -nostdin -loglevel error -stats_period 0.5 -progress "$WORK/ff$n.progress" \
    -rtsp_transport tcp -i "$RTSP_CAMERA_URL" -c copy -f hls -hls_time 1 -hls_list_size 6 \
    -hls_flags delete_segments "$WORK/www/stream_$n/playlist.m3u8" 2>"$WORK/ff$n.err" &
  ffmpegs+=($!)
  # Staggered (gst-rtsp-server 1.22 can abort when sessions set up its shared media at once).
  for _ in $(seq 100); do [[ -s $WORK/ff$n.progress ]] && break; sleep 0.1; done
done
python3 -m http.server 0 --bind 127.0.0.1 --directory "$WORK/www" >"$WORK/www.out" 2>&1 &
WWW_PID=$!
WWW_PORT=""
for _ in $(seq 100); do
  WWW_PORT=$(sed -n 's|.*port \([0-9]*\).*|\1|p' "$WORK/www.out" | head -n1)
  [[ -n $WWW_PORT ]] && break
  sleep 0.1
done
for _ in $(seq 100); do  # the playlists exist before the viewers ask
  [[ -s $WORK/www/stream_$((CAMERAS - 1))/playlist.m3u8 ]] && break
  sleep 0.1
done
hls_viewers "http://127.0.0.1:$WWW_PORT"
sleep "$WARMUP"
frames0=()
for ((n = 0; n < CAMERAS; n++)); do frames0+=("$(progress_frames "$WORK/ff$n.progress")"); done
t0=$EPOCHREALTIME c0=$(bench_cpu_ns "${ffmpegs[@]}") w0=$(bench_cpu_ns "$WWW_PID")
sleep "$DURATION"
t1=$EPOCHREALTIME c1=$(bench_cpu_ns "${ffmpegs[@]}") w1=$(bench_cpu_ns "$WWW_PID")
www_rss=$(rss_kib "$WWW_PID")
ff_rss=$(rss_kib "${ffmpegs[@]}") ff_anon=$(anon_kib "${ffmpegs[@]}")
ff_fps=""
for ((n = 0; n < CAMERAS; n++)); do
  ff_fps+="$(calc "printf \"%.1f \", ($(progress_frames "$WORK/ff$n.progress") - ${frames0[$n]}) / ($t1 - $t0)")"
done
alive=0
for p in "${ffmpegs[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
stop_viewers
kill "${ffmpegs[@]}" "$WWW_PID" 2>/dev/null || true
wait "${ffmpegs[@]}" "$WWW_PID" 2>/dev/null || true
((alive == CAMERAS)) || { echo "dashboard: only $alive of $CAMERAS ffmpegs lasted the window:" >&2
                          cat "$WORK"/ff*.err >&2; }
ff_cpu=$(calc "printf \"%.1f\", 100 * ($c1 - $c0) / 1e9 / ($t1 - $t0)")
www_cpu=$(calc "printf \"%.1f\", 100 * ($w1 - $w0) / 1e9 / ($t1 - $t0)")

echo
echo "Camera dashboard: $CAMERAS x 1920x1080 30 fps H.264 RTSP cameras ($PATTERN, $BITRATE kbit/s),"
echo "$HLS_VIEWERS HLS viewers each (+ $FLV_VIEWERS /flv viewers each on printcast's side); ${DURATION} s after ${WARMUP} s"
echo "($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-34s %10s %10s %10s %8s\n' "" "printcast" "ffmpeg x$CAMERAS" "pc/ff" "target"
printf '%-34s %10s %10s %10s %8s\n' "CPU (% of one core)" "$pc_cpu" "$ff_cpu" \
  "$(calc "printf \"%.2fx\", ($ff_cpu > 0 ? $pc_cpu / $ff_cpu : 0)")" "<= 0.5x"
printf '%-34s %10s %10s %10s %8s\n' "RSS (MB)" "$(calc "printf \"%.1f\", $pc_rss / 1024")" \
  "$(calc "printf \"%.1f\", $ff_rss / 1024")" "$(calc "printf \"%.2fx\", ($ff_rss > 0 ? $pc_rss / $ff_rss : 0)")" "<= 0.25x"
printf '%-34s %10s %10s %10s\n' "  of which anonymous (MB)" "$(calc "printf \"%.1f\", $pc_anon / 1024")" \
  "$(calc "printf \"%.1f\", $ff_anon / 1024")" "$(calc "printf \"%.2fx\", ($ff_anon > 0 ? $pc_anon / $ff_anon : 0)")"
echo "frames/s received per camera: printcast $pc_fps; ffmpeg $ff_fps"
# printcast serves its viewers itself; the ffmpegs' viewers are served by the web server, which
# the targets leave out: shown here for context only.
echo "the ffmpegs' web server (python3 -m http.server, serving the HLS viewers): CPU $www_cpu %, RSS $(calc "printf \"%.1f\", $www_rss / 1024") MB"
echo "printcast: $pc_threads threads"
[[ ! -s $WORK/hls-viewers.err ]] || { echo "HLS viewers' errors:"; sort "$WORK/hls-viewers.err" | uniq -c | head -n 5; }
echo "(the viewers, the web server and the RTSP server are not counted in the ratios; the RTSP server's x264 shares the cores)"
