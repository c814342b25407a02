#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Soak benchmark (issue 15): the streamer for SOAK_MINUTES (default 60) with viewers of every
# output joining and leaving, touches, settings changes and timelapse API calls, and optionally a
# camera unplug at a fixed interval, printing its RSS and open descriptors once a minute and, at
# the end, their slope after the warm-up (SOAK_WARMUP minutes, default 2). Target: no growth after
# the warm-up (the slope stays within noise: a few KiB per minute, 0 descriptors). Not in CI;
# prints numbers, never fails on them (exit 1 when the streamer dies or a camera does not come
# back after a replug).
#
#   bench/soak.sh BUILD_DIR
#
# Each round (every SOAK_ROUND seconds, default 5): an MJPEG reader and a snapshot (curl), an
# /flv and a /stream.mp4 reader (ffmpeg, a few seconds each, started in the background so that
# viewers overlap), an HLS playlist and its newest segment, /status, /metrics, /api/stats, a tap
# (POST /api/touch), every 6th round a settings change (mjpeg_fps 5 <-> 10, saved to the config
# file), every 4th round /api/timelapse/list.
#
# SOAK_STREAMER_ARGS: the camera and board (default: the virtual board's test pattern,
#   "--board virtual --resolution 640x480 --desired-fps 15 --display-fps 5").
# SOAK_UNPLUG_EVERY (minutes, default 0 = never), SOAK_UNPLUG and SOAK_REPLUG (shell commands):
#   every SOAK_UNPLUG_EVERY minutes the camera is unplugged, the soak waits (at most 20 s) for
#   /api/stats to say "no-signal", replugs it and waits (at most 60 s) for "streaming" again,
#   and prints both times. The lab does this with vivid (tests/lab/run-lab.sh --soak).
set -euo pipefail

BUILD=${1:?usage: bench/soak.sh BUILD_DIR}
MINUTES=${SOAK_MINUTES:-60}
WARMUP=${SOAK_WARMUP:-2}
ROUND=${SOAK_ROUND:-5}
STREAMER=$BUILD/apps/streamer/printcast-streamer
[[ -x $STREAMER ]] || { echo "soak: $STREAMER is not built (build $BUILD first)" >&2; exit 2; }
for tool in curl ffmpeg awk; do
  command -v "$tool" >/dev/null || { echo "soak: $tool is missing (scripts/install-deps.sh test)" >&2; exit 2; }
done

# shellcheck source=bench/lib/streamer.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/streamer.sh"
bench_init soak "$STREAMER"

printf '{\n  "mjpeg_fps": 10\n}\n' >"$WORK/app.json"
mkdir -p "$WORK/timelapse"
read -r -a camera_args <<<"${SOAK_STREAMER_ARGS:---board virtual --resolution 640x480 --desired-fps 15 --display-fps 5}"
UNPLUG_EVERY=${SOAK_UNPLUG_EVERY:-0}
bench_start_streamer "${camera_args[@]}" --flv-port -1 --ws-port -1 --ring-name "printcast-soak-$$" --config "$WORK/app.json" \
  --timelapse-folder "$WORK/timelapse" --log-level warn
STREAM=http://127.0.0.1:$STREAM_PORT
CONTROL=http://127.0.0.1:$CONTROL_PORT

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$STREAMER_PID/status"; }
# The anonymous part of RSS (heap, stacks: what a leak grows; the rest is mapped files).
anon_kib() { awk '/^Anonymous:/ { print $2 }' "/proc/$STREAMER_PID/smaps_rollup" 2>/dev/null || echo 0; }
fds() { find "/proc/$STREAMER_PID/fd" -mindepth 1 -maxdepth 1 | wc -l; }
threads() { awk '/^Threads:/ { print $2 }' "/proc/$STREAMER_PID/status"; }

round() {
  local n=$1 q=$((RANDOM % 3 + 2))
  curl -s -m "$q" -o /dev/null "$STREAM/stream" || true
  curl -s -m 5 -o /dev/null "$STREAM/snapshot" || true
  (ffmpeg -v quiet -t "$q" -i "$STREAM/flv" -c copy -f null - </dev/null || true) &
  (ffmpeg -v quiet -t "$q" -i "$STREAM/stream.mp4" -c copy -f null - </dev/null || true) &
  local seg
  seg=$(curl -s -m 5 "$STREAM/hls/stream.m3u8" | grep -v '^#' | tail -n 1 || true)
  [[ -z $seg ]] || curl -s -m 5 -o /dev/null "$STREAM/hls/$seg" || true
  for path in /status /metrics; do curl -s -m 5 -o /dev/null "$STREAM$path" || true; done
  curl -s -m 5 -o /dev/null "$CONTROL/api/stats" || true
  curl -s -m 5 -o /dev/null -H 'Content-Type: application/json' \
    -d "{\"x\":$((RANDOM % 800)),\"y\":$((RANDOM % 480)),\"duration\":20}" "$CONTROL/api/touch" || true
  if ((n % 6 == 0)); then
    curl -s -m 5 -o /dev/null -H 'Content-Type: application/json' \
      -d "{\"mjpeg_fps\":$((n % 12 == 0 ? 5 : 10))}" "$CONTROL/api/settings" || true
  fi
  if ((n % 4 == 0)); then curl -s -m 5 -o /dev/null "$CONTROL/api/timelapse/list" || true; fi
}

# camera_state: /api/stats "camera_state" ("streaming", "no-signal: ...", ...).
camera_state() {
  curl -s -m 5 "$CONTROL/api/stats" | sed -n 's/.*"camera_state":"\([^"]*\)".*/\1/p' || true
}
# wait_state PREFIX SECONDS: until camera_state starts with PREFIX; prints the seconds it took.
wait_state() {
  local t0 state
  t0=$(date +%s.%N)
  while :; do
    state=$(camera_state)
    if [[ $state == "$1"* ]]; then
      awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
      return 0
    fi
    if awk -v a="$t0" -v b="$(date +%s.%N)" -v l="$2" 'BEGIN { exit !(b - a > l) }'; then
      echo "timeout (state: ${state:-none})"
      return 1
    fi
    sleep 0.2
  done
}
unplugs=0
unplug_failures=0
unplug() {
  local lost back
  unplugs=$((unplugs + 1))
  bash -c "$SOAK_UNPLUG" || echo "soak: the unplug command failed: $SOAK_UNPLUG" >&2
  lost=$(wait_state no-signal 20) || unplug_failures=$((unplug_failures + 1))
  bash -c "$SOAK_REPLUG" || echo "soak: the replug command failed: $SOAK_REPLUG" >&2
  back=$(wait_state streaming 60) || unplug_failures=$((unplug_failures + 1))
  echo "   unplug $unplugs: no-signal after $lost s; replugged, streaming again after $back s"
}

echo "== soak: $MINUTES min, a round every $ROUND s, warm-up $WARMUP min; streamer pid $STREAMER_PID"
printf '%6s %10s %10s %6s %8s\n' minute rss_kib anon_kib fds threads
printf '%6d %10d %10d %6d %8d\n' 0 "$(rss_kib)" "$(anon_kib)" "$(fds)" "$(threads)" | tee "$WORK/samples"
start=$(date +%s)
n=0
next_sample=60
while :; do
  now=$(($(date +%s) - start))
  ((now < MINUTES * 60)) || break
  n=$((n + 1))
  round "$n"
  kill -0 "$STREAMER_PID" 2>/dev/null || { echo "soak: the streamer died:" >&2; tail -n 20 "$WORK/streamer.err" >&2; exit 1; }
  if (($(date +%s) - start >= next_sample)); then
    printf '%6d %10d %10d %6d %8d\n' $((next_sample / 60)) "$(rss_kib)" "$(anon_kib)" "$(fds)" "$(threads)" |
      tee -a "$WORK/samples"
    if ((UNPLUG_EVERY > 0 && (next_sample / 60) % UNPLUG_EVERY == 0)); then unplug; fi
    next_sample=$((next_sample + 60))
  fi
  sleep "$ROUND"
done
wait_viewers() { for p in $(jobs -p); do [[ $p == "$STREAMER_PID" ]] || wait "$p" 2>/dev/null || true; done; }
wait_viewers
echo "== soak: $n rounds; after the viewers left: rss $(rss_kib) KiB, $(fds) descriptors, $(threads) threads"
# Least-squares slope of RSS and descriptors over the samples after the warm-up.
awk -v warm="$WARMUP" '
  $1 >= warm { n++; sx += $1; sy += $2; sxx += $1 * $1; sxy += $1 * $2; sa += $3; sxa += $1 * $3; sf += $4; sxf += $1 * $4 }
  END {
    if (n < 2) { print "== soak: too few samples after the warm-up for a slope (run longer)"; exit }
    d = n * sxx - sx * sx
    printf "== soak: slope after %d min: RSS %+.1f KiB/min (anonymous %+.1f), descriptors %+.2f per min (%d samples)\n",
      warm, (n * sxy - sx * sy) / d, (n * sxa - sx * sa) / d, (n * sxf - sx * sf) / d, n
  }' "$WORK/samples"
if ((unplugs > 0)); then
  echo "== soak: $unplugs camera unplugs, $unplug_failures without the expected state in time"
  ((unplug_failures == 0)) || exit 1
fi
