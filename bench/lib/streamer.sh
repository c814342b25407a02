# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Sourced by the bench scripts: start and stop one printcast-streamer and clean up on exit.
#
#   . "$(dirname "$0")/lib/streamer.sh"
#   bench_init NAME STREAMER_BINARY      (makes $WORK, a temporary folder removed on exit; sets
#                                         the EXIT trap, which also kills background jobs)
#   bench_start_streamer ARGS...         (--port 0 --control-port 0 are added; output in
#                                         $WORK/streamer.out/.err; sets STREAMER_PID, STREAM_PORT,
#                                         CONTROL_PORT; exits 1 with the output if it did not start)
#   bench_stop_streamer                  (SIGTERM, waits)
#   bench_cpu_ns PID...                  (user+sys CPU in ns of the live threads of the processes,
#                                         from /proc/PID/task/*/schedstat: stat's 10 ms ticks are
#                                         too coarse for a few seconds of a light process)
#   bench_rtsp_camera ARGS...            (tests/integration/rtsp_server.py --port 0 ARGS: a
#                                         gst-rtsp-server camera; sets RTSP_CAMERA_URL and
#                                         RTSP_CAMERA_PID; exits 2 when python3-gi or a GStreamer
#                                         plugin is missing, 1 when it did not start)

bench_init() {
  BENCH_NAME=$1
  BENCH_STREAMER=$2
  WORK=$(mktemp -d)
  STREAMER_PID=""
  trap bench_cleanup EXIT
}

# shellcheck disable=SC2317  # run by the EXIT trap
bench_cleanup() {
  local p
  for p in $(jobs -p); do [[ $p == "$STREAMER_PID" ]] || kill "$p" 2>/dev/null || true; done
  if [[ -n $STREAMER_PID ]]; then
    kill "$STREAMER_PID" 2>/dev/null || true
    wait "$STREAMER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}

bench_start_streamer() {
  # The RTSP server on any free port unless the bench says: runs never clash on 8554.
  local rtsp=(--rtsp-port 0)
  [[ " $* " != *" --rtsp-port "* ]] || rtsp=()
  "$BENCH_STREAMER" --port 0 --control-port 0 "${rtsp[@]}" "$@" >"$WORK/streamer.out" 2>"$WORK/streamer.err" &
  STREAMER_PID=$!
  STREAM_PORT=""
  CONTROL_PORT=""
  for _ in $(seq 100); do
    STREAM_PORT=$(sed -n 's|^ *status  *http://[0-9.]*:\([0-9]*\)/status.*|\1|p' "$WORK/streamer.out")
    CONTROL_PORT=$(sed -n 's|^ *stats  *http://[0-9.]*:\([0-9]*\)/api/stats.*|\1|p' "$WORK/streamer.out")
    [[ -n $STREAM_PORT && -n $CONTROL_PORT ]] && return 0
    kill -0 "$STREAMER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "$BENCH_NAME: the streamer did not start:" >&2
  cat "$WORK/streamer.out" "$WORK/streamer.err" >&2
  exit 1
}

bench_stop_streamer() {
  kill "$STREAMER_PID"
  wait "$STREAMER_PID" || true
  STREAMER_PID=""
}

bench_cpu_ns() {
  local p f ns total=0
  for p in "$@"; do
    for f in /proc/"$p"/task/*/schedstat; do
      { read -r ns _ <"$f"; } 2>/dev/null && total=$((total + ns))
    done
  done
  echo "$total"
}

bench_rtsp_camera() {
  local server rc
  server=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/tests/integration/rtsp_server.py
  /usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0")' 2>/dev/null ||
    { echo "$BENCH_NAME: needs python3-gi and gir1.2-gst-rtsp-server-1.0 (scripts/install-deps.sh test)" >&2; exit 2; }
  /usr/bin/python3 "$server" --port 0 "$@" >"$WORK/rtsp-camera.out" 2>"$WORK/rtsp-camera.err" &
  RTSP_CAMERA_PID=$!
  RTSP_CAMERA_URL=""
  for _ in $(seq 100); do
    RTSP_CAMERA_URL=$(sed -n 's/^READY //p' "$WORK/rtsp-camera.out")
    [[ -n $RTSP_CAMERA_URL ]] && return 0
    if ! kill -0 "$RTSP_CAMERA_PID" 2>/dev/null; then
      wait "$RTSP_CAMERA_PID" && rc=0 || rc=$?
      echo "$BENCH_NAME: the RTSP server did not start (exit $rc):" >&2
      cat "$WORK/rtsp-camera.err" >&2
      [[ $rc == 2 ]] && exit 2  # a missing GStreamer plugin (x264enc: gstreamer1.0-plugins-ugly)
      exit 1
    fi
    sleep 0.1
  done
  echo "$BENCH_NAME: the RTSP server did not say READY" >&2
  exit 1
}
