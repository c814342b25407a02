#!/bin/bash
# SPDX-License-Identifier: MIT
# The lab's benchmark payload (run-lab.sh --bench): printcast-streamer and ustreamer on the same
# vivid webcam (640x480 YUYV, 25 fps, JPEG quality 80), 1 and 10 clients on /stream each.
#   bench-payload.sh LAB_ENV   (SRC_DIR, BUILD_DIR, RESULTS, KVER; run by vm-payload.sh)
# Writes RESULTS/bench.jsonl (one printcast-mjpeg-latency line per run) and RESULTS/bench.md
# (the table, ratios ours/ustreamer). Prints numbers; never fails on speed.
set -u
# shellcheck disable=SC1090
. "$1"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp LANG=C.UTF-8
BENCH_WARMUP=${BENCH_WARMUP:-3}
BENCH_SECONDS=${BENCH_SECONDS:-10}
client="$BUILD_DIR/bench/printcast-mjpeg-latency"
streamer="$BUILD_DIR/apps/streamer/printcast-streamer"
jsonl="$RESULTS/bench.jsonl"
: >"$jsonl"
: >"$RESULTS/summary"

log() { echo "lab-bench: $*" | tee -a "$RESULTS/bench.log"; }

# wait_for FILE REGEX: up to 20 s for a line in a log.
wait_for() {
  for _ in $(seq 200); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# measure LABEL PID PORT PATH HEADERS: one run per client count, appended to bench.jsonl.
measure() {
  local label=$1 pid=$2 port=$3 path=$4 headers=$5 n
  for n in 1 10; do
    if timeout 60 "$client" --port "$port" --path "$path" --clients "$n" --warmup "$BENCH_WARMUP" \
      --duration "$BENCH_SECONDS" --pid "$pid" --header "$headers" --label "$label" \
      >>"$jsonl" 2>>"$RESULTS/bench.log"; then
      log "$label, $n clients: $(tail -n 1 "$jsonl")"
    else
      log "$label, $n clients: the client failed (see bench.log)"
    fi
  done
}

stop() {
  kill "$1" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null
}

{
  echo "kernel: $(uname -r), $(nproc) CPUs"
  cat /sys/class/video4linux/video0/name 2>&1
  v4l2-ctl -d /dev/video0 --list-formats-ext 2>/dev/null | head -40
} >"$RESULTS/devices.txt" 2>&1

# vivid stamps a buffer at the end of its frame period by default (the ideal start time plus one
# period, 40 ms ahead of when the buffer is handed out); "Start of Exposure" stamps the start, when
# the frame becomes available, so latencies measured from the stamp are real. Both servers then see
# the same stamps.
python3 - >>"$RESULTS/bench.log" 2>&1 <<'PY'
import fcntl, struct
VIDIOC_QUERYCTRL, VIDIOC_S_CTRL, VIDIOC_G_CTRL, NEXT = 0xC0445624, 0xC008561C, 0xC008561B, 0x80000000
with open("/dev/video0", "rb+", buffering=0) as dev:
    cid = 0
    while True:
        q = bytearray(struct.pack("II32siiiiI2I", cid | NEXT, 0, b"", 0, 0, 0, 0, 0, 0, 0))
        try:
            fcntl.ioctl(dev, VIDIOC_QUERYCTRL, q)
        except OSError:
            print("lab-bench: vivid has no Timestamp Source control")
            break
        cid = struct.unpack_from("I", q)[0]
        if struct.unpack_from("32s", q, 8)[0].split(b"\0")[0] == b"Timestamp Source":
            fcntl.ioctl(dev, VIDIOC_S_CTRL, bytearray(struct.pack("Ii", cid, 1)))
            c = bytearray(struct.pack("Ii", cid, 0))
            fcntl.ioctl(dev, VIDIOC_G_CTRL, c)
            print(f"lab-bench: vivid Timestamp Source = {struct.unpack_from('Ii', c)[1]} (1 = Start of Exposure)")
            break
PY

# --- printcast-streamer ---------------------------------------------------------------------------
if [ -x "$streamer" ] && [ -x "$client" ]; then
  "$streamer" --board generic-linux --device /dev/video0 --resolution 640x480 --desired-fps 25 \
    --mjpeg-fps 25 --jpeg-quality 80 --no-display --host 127.0.0.1 --port 0 --control-port 0 \
    --flv-port -1 >"$RESULTS/bench-printcast.log" 2>&1 &
  pid=$!
  if wait_for "$RESULTS/bench-printcast.log" 'camera MJPEG +http://127\.0\.0\.1:[0-9]+/stream'; then
    port=$(grep -oE 'camera MJPEG +http://127\.0\.0\.1:[0-9]+' "$RESULTS/bench-printcast.log" | grep -oE '[0-9]+$')
    sleep 2  # the camera opens after the listeners
    measure printcast "$pid" "$port" /stream X-Timestamp
  else
    log "printcast-streamer did not start (bench-printcast.log)"
  fi
  stop "$pid"
else
  log "printcast-streamer or printcast-mjpeg-latency not built"
fi

# --- ustreamer (Debian's): the same device and settings; its X-Timestamp is the send time on
# CLOCK_REALTIME, so the capture time is its X-UStreamer-Grab-* header (?extra_headers=1). ------
if command -v ustreamer >/dev/null && [ -x "$client" ]; then
  ustreamer --version >"$RESULTS/bench-ustreamer.log" 2>&1
  ustreamer --device /dev/video0 --input 0 --resolution 640x480 --format YUYV --desired-fps 25 \
    --quality 80 --encoder CPU --host 127.0.0.1 --port 18090 >>"$RESULTS/bench-ustreamer.log" 2>&1 &
  pid=$!
  if wait_for "$RESULTS/bench-ustreamer.log" 'Listening HTTP on'; then
    sleep 2
    measure ustreamer "$pid" 18090 '/stream?extra_headers=1' \
      'X-UStreamer-Grab-Time,X-UStreamer-Grab-Begin-Time,X-UStreamer-Grab-End-Time'
  else
    log "ustreamer did not start (bench-ustreamer.log)"
  fi
  stop "$pid"
else
  log "ustreamer is not installed (Debian package ustreamer; scripts/install-deps.sh test)"
fi

# --- the table ------------------------------------------------------------------------------------
python3 - "$jsonl" >"$RESULTS/bench.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def f(v, d=1):
    return "-" if v is None else f"{v:.{d}f}"
print("| server | clients | fps/client | CPU ms/frame | CPU ms/part | CPU % | latency p50 ms | latency p99 ms | timestamp header (clock) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
for r in rows:
    print(f"| {r['label']} | {r['clients']} | {f(r['fps_per_client'])} | {f(r.get('cpu_ms_per_frame'), 2)} | "
          f"{f(r.get('cpu_ms_per_part'), 2)} | {f(r.get('cpu_percent'))} | {f(r['latency_p50_ms'])} | "
          f"{f(r['latency_p99_ms'])} | {r['header']} ({r['clock']}) |")
by = {(r["label"], r["clients"]): r for r in rows}
print()
print("| clients | fps ours/ustreamer | CPU per frame ours/ustreamer | latency p50 ours/ustreamer | latency p99 ours/ustreamer |")
print("|---:|---:|---:|---:|---:|")
for n in (1, 10):
    a, b = by.get(("printcast", n)), by.get(("ustreamer", n))
    if not a or not b:
        continue
    def ratio(k):
        x, y = a.get(k), b.get(k)
        return "-" if x is None or not y else f"{x / y:.2f}"
    print(f"| {n} | {ratio('fps_per_client')} | {ratio('cpu_ms_per_frame')} | {ratio('latency_p50_ms')} | {ratio('latency_p99_ms')} |")
PY
echo "bench 0 0" >>"$RESULTS/summary"
