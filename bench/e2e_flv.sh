#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End-to-end benchmark: printcast-streamer serving /flv from the test pattern vs ffmpeg+libx264.
#
#   bench/e2e_flv.sh BUILD_DIR
#
# For each size (E2E_SIZES, default "640x480 1280x720"):
#  (a) printcast: printcast-streamer --board virtual --unpaced (the test pattern as fast as the
#      encoder takes it) serving /flv; printcast-flv-count reads the stream, discards
#      E2E_WARMUP seconds (default 1), then counts the H.264 frames that arrive in E2E_DURATION
#      seconds (default 8) and the streamer's utime+stime over that window (/proc/PID/stat).
#  (b) ffmpeg: printcast-pattern-dump (the same test pattern, unpaced) piped into
#      ffmpeg -f rawvideo ... -c:v libx264 ... -f flv /dev/null, for as many frames as (a)
#      delivered; wall time and user+sys CPU of the whole pipeline (bash `time`).
# Both pipelines include frame synthesis. Prints a table; never fails on slowness (exit status
# is non-zero only when something could not run).
set -euo pipefail

BUILD=${1:?usage: bench/e2e_flv.sh BUILD_DIR}
SIZES=${E2E_SIZES:-"640x480 1280x720"}
WARMUP=${E2E_WARMUP:-1}
DURATION=${E2E_DURATION:-8}
FPS=30
BITRATE=2000
GOP=60

STREAMER=$BUILD/apps/streamer/printcast-streamer
DUMP=$BUILD/bench/printcast-pattern-dump
COUNT=$BUILD/bench/printcast-flv-count
for exe in "$STREAMER" "$DUMP" "$COUNT"; do
  [[ -x $exe ]] || { echo "e2e_flv: $exe is not built (build $BUILD first)" >&2; exit 2; }
done
command -v ffmpeg >/dev/null || { echo "e2e_flv: ffmpeg is not installed" >&2; exit 2; }

# x264 settings as printcast's encoder sets them (codecs/src/encoder_x264.cpp): preset
# ultrafast, tune zerolatency, profile baseline, threads auto, no B-frames, keyint = gop,
# ABR at the bitrate with a one-second VBV (maxrate = bufsize = bitrate).
X264_ARGS=(-c:v libx264 -preset ultrafast -tune zerolatency -profile:v baseline -threads 0 -bf 0
           -b:v "${BITRATE}k" -maxrate "${BITRATE}k" -bufsize "${BITRATE}k" -g "$GOP")

# shellcheck source=bench/lib/streamer.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/streamer.sh"
bench_init e2e_flv "$STREAMER"

# Start the streamer; sets STREAMER_PID, STREAM_PORT, CONTROL_PORT.
start_streamer() {
  local size=$1
  bench_start_streamer --board virtual --unpaced --desired-fps "$FPS" --resolution "$size" \
    --bitrate "$BITRATE" --gop "$GOP" --no-display --flv-port -1 --log-level warn
}

# key=value output of printcast-flv-count -> value of $2 in file $1
kv() { sed -n "s/^$2=//p" "$1"; }

# The option string x264 writes into the SEI of its first frame, one option a line.
x264_options() { grep -a -o 'x264 - core [[:print:]]*' "$1" | head -n 1 | sed 's/.*options: //' | tr ' ' '\n'; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
ROWS=()
NOTES=()
for size in $SIZES; do
  w=${size%x*}
  h=${size#*x}
  echo "== $size: printcast-streamer /flv for ${DURATION}s after ${WARMUP}s warm-up" >&2
  start_streamer "$size"
  "$COUNT" --port "$STREAM_PORT" --control-port "$CONTROL_PORT" --pid "$STREAMER_PID" \
    --warmup "$WARMUP" --duration "$DURATION" --save "$WORK/printcast.flv" >"$WORK/count.out"
  bench_stop_streamer
  frames=$(kv "$WORK/count.out" frames)
  pc_fps=$(kv "$WORK/count.out" fps)
  pc_cpu_ms=$(kv "$WORK/count.out" cpu_ms_per_frame)
  pc_cpu_pct=$(kv "$WORK/count.out" cpu_percent)
  dropped=$(kv "$WORK/count.out" dropped)
  reader_pct=$(awk -v c="$(kv "$WORK/count.out" reader_cpu_s)" -v s="$(kv "$WORK/count.out" seconds)" 'BEGIN { printf "%.0f", 100 * c / s }')
  NOTES+=("$size: the /flv reader (not counted) used ${reader_pct}% of a core beside the streamer")
  encoded=$(kv "$WORK/count.out" encoded)
  pc_kbps=$(awk -v b="$(kv "$WORK/count.out" bytes)" -v n="$frames" -v f="$FPS" 'BEGIN { printf "%.0f", b * 8 / n * f / 1000 }')
  [[ $dropped == 0 ]] || NOTES+=("$size: the streamer encoded $encoded frames but dropped $dropped for the slow reader")

  echo "== $size: pattern-dump | ffmpeg libx264, $frames frames" >&2
  TIMEFORMAT='%R %U %S'
  { time "$DUMP" --width "$w" --height "$h" --frames "$frames" |
      ffmpeg -hide_banner -nostats -loglevel info -f rawvideo -pix_fmt yuv420p -s "$size" -r "$FPS" -i - \
        "${X264_ARGS[@]}" -f flv -y /dev/null 2>"$WORK/ffmpeg.log"; } 2>"$WORK/time.out"
  read -r ff_wall ff_user ff_sys <"$WORK/time.out"
  ff_kb=$(sed -n 's/^video:\([0-9.]*\)k[iB]*.*/\1/p' "$WORK/ffmpeg.log" | tail -n 1)
  ff_kbps=$(awk -v k="${ff_kb:-0}" -v n="$frames" -v f="$FPS" 'BEGIN { printf "%.0f", k * 1024 * 8 / n * f / 1000 }')

  row=$(awk -v s="$size" -v pf="$pc_fps" -v pc="$pc_cpu_ms" -v pp="$pc_cpu_pct" -v n="$frames" \
    -v fw="$ff_wall" -v fu="$ff_user" -v fs="$ff_sys" -v pk="$pc_kbps" -v fk="$ff_kbps" 'BEGIN {
      ff = n / fw; fc = 1000 * (fu + fs) / n; fp = 100 * (fu + fs) / fw
      printf "%-9s | %7.0f | %7.0f | %5.2fx | %7.3f (%3.0f%%) | %7.3f (%3.0f%%) | %5.2fx | %5d / %5d", \
        s, pf, ff, pf / ff, pc, pp, fc, fp, fc / pc, pk, fk }')
  ROWS+=("$row")

  if [[ $size == "${SIZES%% *}" ]]; then
    # Settings check: the option strings both x264 instances wrote into their streams.
    "$DUMP" --width "$w" --height "$h" --frames 30 |
      ffmpeg -hide_banner -nostats -loglevel error -f rawvideo -pix_fmt yuv420p -s "$size" -r "$FPS" -i - \
        "${X264_ARGS[@]}" -f flv -y "$WORK/ffmpeg.flv"
    X264_CORE=$(grep -a -o 'x264 - core [0-9]*' "$WORK/ffmpeg.flv" | head -n 1 | sed 's/.* //')
    x264_options "$WORK/printcast.flv" >"$WORK/opts.printcast" || true
    x264_options "$WORK/ffmpeg.flv" >"$WORK/opts.ffmpeg" || true
    OPTS_DIFF=$(diff "$WORK/opts.printcast" "$WORK/opts.ffmpeg" | sed -n 's/^< /printcast: /p; s/^> /ffmpeg:    /p' || true)
  fi
done

echo
echo "printcast-streamer /flv vs ffmpeg libx264 (${FPS} fps nominal, ${BITRATE} kbit/s, gop ${GOP}, $(nproc) cores)"
echo "load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg) (numbers are only meaningful on an idle machine)"
echo "fps = frames per second of wall time; CPU = user+sys ms per frame (and % of one core);"
echo "ratios > 1 mean printcast is better: fps printcast/ffmpeg, CPU ffmpeg/printcast."
echo
printf '%-9s | %7s | %7s | %6s | %-15s | %-15s | %6s | %s\n' size "pc fps" "ff fps" "fps x" "pc CPU ms/frame" \
  "ff CPU ms/frame" "CPU x" "kbit/s pc / ff"
printf '%s\n' "----------+---------+---------+--------+-----------------+-----------------+--------+---------------"
printf '%s\n' "${ROWS[@]}"
echo
echo "Same in both: test pattern synthesis per frame, libx264 (core ${X264_CORE:-?}) preset ultrafast,"
echo "tune zerolatency, profile baseline, threads auto, keyint $GOP, ABR ${BITRATE}k with a ${BITRATE}k VBV."
echo "Different: printcast synthesises and encodes one after the other on its camera thread, then"
echo "sends FLV over a loopback HTTP connection (counted in its CPU; the reader's is not). ffmpeg's"
echo "generator runs in its own process alongside the encoder and the raw frames cross a pipe;"
echo "ffmpeg writes FLV to /dev/null and its numbers include process start-up."
if [[ ! -s $WORK/opts.printcast || ! -s $WORK/opts.ffmpeg ]]; then
  echo "x264 option strings: could not be read from both streams (no SEI found)."
elif [[ -n ${OPTS_DIFF:-} ]]; then
  echo "x264 option strings that differ (first size):"
  printf '  %s\n' "$OPTS_DIFF"
else
  echo "x264 option strings (SEI of each stream's first frame): identical."
fi
for note in "${NOTES[@]}"; do echo "note: $note"; done
exit 0
