#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Soak benchmark (issue 15): the streamer on the virtual board for SOAK_MINUTES (default 60) with
# viewers of every output joining and leaving, touches, settings changes and timelapse API calls,
# printing its RSS and open descriptors once a minute and, at the end, their slope after the
# warm-up (SOAK_WARMUP minutes, default 2). Target: no growth after the warm-up (the slope stays
# within noise: a few KiB per minute, 0 descriptors). Not in CI; prints numbers, never fails on
# them (exit 1 only when the streamer dies).
#
#   bench/soak.sh BUILD_DIR
#
# Each round (every SOAK_ROUND seconds, default 5): an MJPEG reader and a snapshot (curl), an
# /flv and a /stream.mp4 reader (ffmpeg, a few seconds each, started in the background so that
# viewers overlap), an HLS playlist and its newest segment, /status, /metrics, /api/stats, a tap
# (POST /api/touch), every 6th round a settings change (mjpeg_fps 5 <-> 10, saved to the config
# file), every 4th round /api/timelapse/list. A camera unplug every 10 minutes needs the lab's
# V4L2 device (docs/lab.md): not done here.
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

printf '{\n  "mjpeg_fps": 10\n}\n' >"$WORK/app.json"
mkdir -p "$WORK/timelapse"
"$STREAMER" --board virtual --resolution 640x480 --desired-fps 15 --display-fps 5 --port 0 --control-port 0 \
  --flv-port -1 --ws-port -1 --ring-name "printcast-soak-$$" --config "$WORK/app.json" \
  --timelapse-folder "$WORK/timelapse" --log-level warn >"$WORK/streamer.out" 2>"$WORK/streamer.err" &
STREAMER_PID=$!
STREAM=""
CONTROL=""
for _ in $(seq 100); do
  STREAM=$(sed -n 's|^ *status  *\(http://[0-9.]*:[0-9]*\)/status.*|\1|p' "$WORK/streamer.out")
  CONTROL=$(sed -n 's|^ *stats  *\(http://[0-9.]*:[0-9]*\)/api/stats.*|\1|p' "$WORK/streamer.out")
  [[ -n $STREAM && -n $CONTROL ]] && break
  kill -0 "$STREAMER_PID" 2>/dev/null || break
  sleep 0.1
done
if [[ -z $STREAM || -z $CONTROL ]]; then
  echo "soak: the streamer did not start:" >&2
  cat "$WORK/streamer.out" "$WORK/streamer.err" >&2
  exit 1
fi

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$STREAMER_PID/status"; }
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

echo "== soak: $MINUTES min, a round every $ROUND s, warm-up $WARMUP min; streamer pid $STREAMER_PID"
printf '%6s %10s %6s %8s\n' minute rss_kib fds threads
printf '%6d %10d %6d %8d\n' 0 "$(rss_kib)" "$(fds)" "$(threads)" | tee "$WORK/samples"
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
    printf '%6d %10d %6d %8d\n' $((next_sample / 60)) "$(rss_kib)" "$(fds)" "$(threads)" | tee -a "$WORK/samples"
    next_sample=$((next_sample + 60))
  fi
  sleep "$ROUND"
done
wait_viewers() { for p in $(jobs -p); do [[ $p == "$STREAMER_PID" ]] || wait "$p" 2>/dev/null || true; done; }
wait_viewers
echo "== soak: $n rounds; after the viewers left: rss $(rss_kib) KiB, $(fds) descriptors, $(threads) threads"
# Least-squares slope of RSS and descriptors over the samples after the warm-up.
awk -v warm="$WARMUP" '
  $1 >= warm { n++; sx += $1; sy += $2; sxx += $1 * $1; sxy += $1 * $2; sf += $3; sxf += $1 * $3 }
  END {
    if (n < 2) { print "== soak: too few samples after the warm-up for a slope (run longer)"; exit }
    d = n * sxx - sx * sx
    printf "== soak: slope after %d min: RSS %+.1f KiB/min, descriptors %+.2f per min (%d samples)\n",
      warm, (n * sxy - sx * sy) / d, (n * sxf - sx * sf) / d, n
  }' "$WORK/samples"
