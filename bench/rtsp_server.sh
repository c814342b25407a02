#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# RTSP out: printcast's RTSP server against GStreamer's gst-rtsp-server, both relaying the same
# 720p30 H.264 (no decode, no encode) to N RTSP clients over TCP, in the same run.
#
#   bench/rtsp_server.sh BUILD_DIR
#
# The camera (upstream): tests/integration/rtsp_server.py (gst-rtsp-server, x264 ultrafast/
# zerolatency, an IDR every second) at 1280x720 30 fps, pattern RTSP_SERVER_PATTERN (default snow,
# which fills RTSP_SERVER_BITRATE kbit/s, default 2500), one slice a picture and SPS/PPS only in the
# SDP (a picture = one slice NAL, so ffmpeg's parser counts one AU a picture on both sides: with two
# slices, rtph264pay config-interval=-1 repeats SPS+PPS before the second IDR slice and ffmpeg cuts
# the picture there). Its CPU is not counted, but its x264 competes for the cores (printed).
# The two servers, both up for the whole run, each pulling the camera over TCP:
#  (a) printcast: printcast-streamer --source rtsp://camera --rtsp-port 0, serving
#      rtsp://HOST:P/stream from the camera's access units (packetized once for all clients);
#  (b) gst: bench/gst_rtsp_relay.py, a gst-rtsp-server shared media
#      ( rtspsrc location=camera protocols=tcp latency=0 ! rtph264depay ! h264parse
#        ! rtph264pay name=pay0 pt=96 config-interval=-1 ), prepared at the first client.
# For N in RTSP_SERVER_CLIENTS (default "1 10 50"), printcast then gst: N readers
#   ffmpeg -rtsp_transport tcp -i rtsp://ADDR:PORT/stream -c copy -f null -
# started RTSP_SERVER_STAGGER s apart (default 0.1; the first one streaming before the others
# start: gst-rtsp-server 1.22 sometimes aborts when many sessions set up its shared media at
# once, see bench/rtsp_passthrough.sh), then RTSP_SERVER_WARMUP s (default 2), then a window of
# RTSP_SERVER_DURATION s (default 6): the server's CPU (user+sys, ns, from
# /proc/PID/task/*/schedstat, thread by thread: a thread that started in the window counts whole,
# one that ended in it is reported), the AUs the N readers muxed (each one's -progress frame=,
# every 0.1 s) and the server's VmRSS at the window's end. The readers' CPU is not counted (it is
# printed: they share the cores); they run at nice RTSP_SERVER_READER_NICE (default 10), standing
# in for clients on other machines: the camera and the two servers go first when the cores are
# short (50 ffmpegs starting take seconds of CPU, and a starved camera x264 falls behind, then
# catches up above 30 AU/s).
# printcast's RTSP server takes at most 16 connections from one address (64 in all; fixed in
# RtspServerConfig), so reader i connects to the machine's ((i-1)/16)-th local address
# (127.0.0.1, ::1, then the global ones from `ip addr`): the same addresses for both servers. A
# round that needs more addresses than the machine has is skipped, and says so.
# Prints, per N: CPU ms per delivered AU (server CPU / AUs muxed by all readers) for each, the
# ratio printcast/gst (target <= 0.5), RSS, AU/s per reader (mean and slowest), CPU % of a core,
# printcast's RTSP queue drops; and per N beyond the first, the CPU each further reader added per
# AU it got (from the first round to this one) with the kernel's share of the CPU (/proc/PID/stat
# stime / (utime + stime), 10 ms ticks). Takes about 85 s. Never fails on slowness; exits 2 when a
# tool is missing.
set -euo pipefail

BUILD=${1:?usage: bench/rtsp_server.sh BUILD_DIR}
WARMUP=${RTSP_SERVER_WARMUP:-2}
DURATION=${RTSP_SERVER_DURATION:-6}
CLIENTS=${RTSP_SERVER_CLIENTS:-1 10 50}
PATTERN=${RTSP_SERVER_PATTERN:-snow}
BITRATE=${RTSP_SERVER_BITRATE:-2500}
STAGGER=${RTSP_SERVER_STAGGER:-0.1}
READER_NICE=${RTSP_SERVER_READER_NICE:-10}
SIZE=1280x720
FPS=30
PER_ADDRESS=16  # printcast's RtspServerConfig::maxPerAddress
MAX_CLIENTS=64  # and ::maxConnections
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STREAMER=$BUILD/apps/streamer/printcast-streamer
CAMERA=$HERE/../tests/integration/rtsp_server.py
RELAY=$HERE/gst_rtsp_relay.py
[[ -x $STREAMER ]] || { echo "rtsp_server: $STREAMER is not built (build $BUILD first)" >&2; exit 2; }
for tool in ffmpeg curl awk; do
  command -v "$tool" >/dev/null || { echo "rtsp_server: $tool is not installed" >&2; exit 2; }
done
/usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0")' 2>/dev/null ||
  { echo "rtsp_server: needs python3-gi and gir1.2-gst-rtsp-server-1.0 (scripts/install-deps.sh test)" >&2; exit 2; }
[[ -r /proc/self/schedstat ]] ||
  { echo "rtsp_server: needs /proc/PID/schedstat (a kernel with CONFIG_SCHED_INFO)" >&2; exit 2; }

# shellcheck source=bench/lib/streamer.sh
. "$HERE/lib/streamer.sh"
bench_init rtsp_server "$STREAMER"
calc() { awk "BEGIN { $1 }"; }  # (keep `>` inside parentheses: a bare one redirects printf)

# "TID NS" for every live thread of process $1 (CPU time in ns).
thread_ns() {
  local f ns tid
  for f in /proc/"$1"/task/*/schedstat; do
    tid=${f%/schedstat} tid=${tid##*/}
    { read -r ns _ <"$f"; } 2>/dev/null && echo "$tid $ns"
  done
  return 0
}
# CPU ns between two thread_ns snapshots, and how many threads of the first are gone in the second.
thread_delta() {
  awk 'NR == FNR { a[$1] = $2; next } { d += $2 - ($1 in a ? a[$1] : 0); seen[$1] = 1 }
       END { for (t in a) if (!(t in seen)) gone++; printf "%d %d\n", d, gone }' "$1" "$2"
}
# utime and stime of process $1 in clock ticks, dead threads included ("USER SYS").
user_sys_ticks() {
  local rest
  rest=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || rest=""
  awk '{ print $12 + 0, $13 + 0 }' <<<"$rest"
}
rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo -; }
# "FILE FRAMES": the newest frame= of each -progress file (0 before its first report).
frames_snapshot() {
  local f
  for f in "$@"; do
    awk -v f="$f" -F= '$1 == "frame" { n = $2 } END { print f, n + 0 }' "$f" 2>/dev/null || echo "$f 0"
  done
}
# printcast's RTSP queue drops so far (/api/stats streams.rtsp.frames_dropped).
pc_dropped() {
  curl -s --max-time 2 "http://127.0.0.1:$CONTROL_PORT/api/stats" | /usr/bin/python3 -c \
    'import json, sys; print(json.load(sys.stdin)["streams"]["rtsp"]["frames_dropped"])' 2>/dev/null || echo -
}
# Waits for "READY URL" in file $2 from process $1 (a python server); prints the URL.
await_ready() {
  local url rc
  for _ in $(seq 100); do
    url=$(sed -n 's/^READY //p' "$2")
    [[ -n $url ]] && { echo "$url"; return 0; }
    if ! kill -0 "$1" 2>/dev/null; then
      wait "$1" && rc=0 || rc=$?
      echo "rtsp_server: $3 did not start (exit $rc):" >&2
      cat "${2%.out}.err" >&2
      [[ $rc == 2 ]] && exit 2  # a missing GStreamer plugin
      exit 1
    fi
    sleep 0.1
  done
  echo "rtsp_server: $3 did not say READY" >&2
  exit 1
}

# The local addresses readers connect from/to, loopback first (each takes PER_ADDRESS readers).
ADDRS=(127.0.0.1)
if command -v ip >/dev/null; then
  while read -r a; do
    [[ $a == 127.0.0.1 ]] || ADDRS+=("$a")
  done < <(ip -o addr show up 2>/dev/null | awk '$0 !~ /scope link|tentative|dadfailed/ { sub(/\/.*/, "", $4); print $4 }')
fi
host_of() { if [[ $1 == *:* ]]; then echo "[$1]"; else echo "$1"; fi; }
CAPACITY=$((${#ADDRS[@]} * PER_ADDRESS))
((CAPACITY <= MAX_CLIENTS)) || CAPACITY=$MAX_CLIENTS

echo "== camera: gst-rtsp-server $SIZE ${FPS} fps, pattern $PATTERN, x264 $BITRATE kbit/s, 1 slice" >&2
/usr/bin/python3 "$CAMERA" --port 0 --size "$SIZE" --fps "$FPS" --pattern "$PATTERN" --bitrate "$BITRATE" \
  --slices 1 --config-interval 0 --protocols tcp >"$WORK/camera.out" 2>"$WORK/camera.err" &
CAMERA_PID=$!
CAMERA_URL=$(await_ready "$CAMERA_PID" "$WORK/camera.out" "the camera (tests/integration/rtsp_server.py)")

echo "== printcast: printcast-streamer --source $CAMERA_URL" >&2
bench_start_streamer --board virtual --source "$CAMERA_URL" --desired-fps "$FPS" --no-display \
  --flv-port -1 --ws-port -1 --no-ring --log-level warn
PC_PORT=""
for _ in $(seq 50); do
  PC_PORT=$(sed -n 's|^ *camera RTSP  *rtsp://[^ ]*:\([0-9]*\)/stream.*|\1|p' "$WORK/streamer.out")
  [[ -n $PC_PORT ]] && break
  sleep 0.1
done
[[ -n $PC_PORT ]] || { echo "rtsp_server: the streamer did not say its RTSP port:" >&2; cat "$WORK/streamer.out" >&2; exit 1; }
for _ in $(seq 100); do  # the camera connected (its first access unit arrived)
  curl -s "http://127.0.0.1:$CONTROL_PORT/status" | grep -q '"signal": *true' && break
  sleep 0.1
done

echo "== gst: bench/gst_rtsp_relay.py --upstream $CAMERA_URL" >&2
/usr/bin/python3 "$RELAY" --upstream "$CAMERA_URL" --port 0 >"$WORK/gst.out" 2>"$WORK/gst.err" &
GST_PID=$!
GST_URL=$(await_ready "$GST_PID" "$WORK/gst.out" "the gst relay (bench/gst_rtsp_relay.py)")
GST_PORT=${GST_URL##*:} GST_PORT=${GST_PORT%%/*}
sleep 1
RSS_IDLE_PC=$(rss_mib "$STREAMER_PID") RSS_IDLE_GST=$(rss_mib "$GST_PID")

declare -A R  # results, keyed "side.N.name"
v() { echo "${R[$1]:--}"; }
DEAD=()  # the sides whose server died

# One round: N readers of side $1 (pc or gst) on port $3, server PID $4.
round() {
  local side=$1 n=$2 port=$3 pid=$4 i url progress=() readers=() t0 t1 r0 r1 f0 f1 d0 d1
  local delta gone alive=0 p c0 c1 slowest secs u0 s0 u1 s1
  for ((i = 1; i <= n; i++)); do
    url="rtsp://$(host_of "${ADDRS[(i - 1) / PER_ADDRESS]}"):$port/stream"
    progress+=("$WORK/$side$n.$i.progress")
    nice -n "$READER_NICE" ffmpeg -nostdin -loglevel error -stats_period 0.1 -progress "$WORK/$side$n.$i.progress" \
      -rtsp_transport tcp -i "$url" -c copy -f null - >/dev/null 2>"$WORK/$side$n.$i.err" &
    readers+=($!)
    if ((i == 1)); then  # the first one streams (an IDR arrived) before the others set up
      for _ in $(seq 100); do [[ -s $WORK/$side$n.1.progress ]] && break; sleep 0.1; done
    else
      sleep "$STAGGER"
    fi
  done
  sleep "$WARMUP"
  [[ $side == pc ]] && d0=$(pc_dropped)
  t0=$EPOCHREALTIME
  thread_ns "$pid" >"$WORK/$side$n.cpu0"
  read -r u0 s0 < <(user_sys_ticks "$pid")
  r0=$(bench_cpu_ns "${readers[@]}") c0=$(bench_cpu_ns "$CAMERA_PID")
  frames_snapshot "${progress[@]}" >"$WORK/$side$n.f0"
  sleep "$DURATION"
  t1=$EPOCHREALTIME
  thread_ns "$pid" >"$WORK/$side$n.cpu1"
  read -r u1 s1 < <(user_sys_ticks "$pid")
  r1=$(bench_cpu_ns "${readers[@]}") c1=$(bench_cpu_ns "$CAMERA_PID")
  frames_snapshot "${progress[@]}" >"$WORK/$side$n.f1"
  R[$side.$n.rss]=$(rss_mib "$pid")
  [[ $side == pc ]] && d1=$(pc_dropped)
  for p in "${readers[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
  kill "${readers[@]}" 2>/dev/null || true
  wait "${readers[@]}" 2>/dev/null || true
  read -r delta gone < <(thread_delta "$WORK/$side$n.cpu0" "$WORK/$side$n.cpu1")
  read -r f0 f1 slowest < <(awk 'NR == FNR { a[$1] = $2; next }
      { d = $2 - a[$1]; s0 += a[$1]; s1 += $2; if (min == "" || d < min) min = d }
      END { print s0, s1, min }' "$WORK/$side$n.f0" "$WORK/$side$n.f1")

  secs=$(calc "printf \"%.3f\", $t1 - $t0")
  R[$side.$n.aus]=$((f1 - f0))
  R[$side.$n.ms]=$(calc "f = $f1 - $f0; printf \"%.4f\", (f > 0 ? $delta / 1e6 / f : 0)")
  R[$side.$n.pct]=$(calc "printf \"%.1f\", 100 * $delta / 1e9 / $secs")
  R[$side.$n.fps]=$(calc "printf \"%.1f\", ($f1 - $f0) / $n / $secs")
  R[$side.$n.slowest]=$(calc "printf \"%.1f\", $slowest / $secs")
  R[$side.$n.readers_pct]=$(calc "printf \"%.0f\", 100 * ($r1 - $r0) / 1e9 / $secs")
  R[$side.$n.camera_pct]=$(calc "printf \"%.0f\", 100 * ($c1 - $c0) / 1e9 / $secs")
  R[$side.$n.cpu_ns]=$delta
  R[$side.$n.secs]=$secs
  R[$side.$n.sys]=$(calc "t = $u1 - $u0 + $s1 - $s0; printf \"%.0f%% of %d ticks\", (t > 0 ? 100 * ($s1 - $s0) / t : 0), t")
  R[$side.$n.alive]=$alive
  R[$side.$n.gone]=$gone
  if [[ $side == pc ]]; then
    R[pc.$n.dropped]=-
    [[ $d0 == - || $d1 == - ]] || R[pc.$n.dropped]=$((d1 - d0))
  fi
  if ((alive < n)); then
    echo "rtsp_server: $side, $n readers: only $alive lasted the window:" >&2
    cat "$WORK/$side$n".*.err | sort | uniq -c | head -n 5 >&2
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "rtsp_server: the $side server died ($n readers); its remaining rounds are skipped:" >&2
    tail -n 3 "$WORK/$([[ $side == pc ]] && echo streamer || echo gst).err" >&2
    DEAD+=("$side")
    unset "R[$side.$n.ms]"
  fi
  sleep 1  # gst-rtsp-server unprepares the shared media once its last session is gone
}

SKIPPED=""
for n in $CLIENTS; do
  if ((n > CAPACITY)); then
    SKIPPED+=" $n"
    echo "rtsp_server: $n readers skipped: printcast takes $PER_ADDRESS from one address and" \
      "$MAX_CLIENTS in all, and this machine has ${#ADDRS[@]} local address(es) (${ADDRS[*]})" >&2
    continue
  fi
  for side in pc gst; do
    [[ " ${DEAD[*]} " != *" $side "* ]] || continue
    if [[ $side == pc ]]; then
      echo "== printcast, $n reader(s) (${DURATION}s after ${WARMUP}s)" >&2
      round pc "$n" "$PC_PORT" "$STREAMER_PID"
    else
      echo "== gst-rtsp-server, $n reader(s) (${DURATION}s after ${WARMUP}s)" >&2
      round gst "$n" "$GST_PORT" "$GST_PID"
    fi
  done
done

echo
echo "RTSP out: $SIZE ${FPS} fps H.264 ($PATTERN, $BITRATE kbit/s) relayed by printcast and by gst-rtsp-server"
echo "(shared media) to N TCP readers (ffmpeg -c copy -f null); $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%7s %11s %11s %9s %17s %17s\n' readers printcast gst ratio "RSS MiB" "AU/s per reader"
printf '%7s %11s %11s %9s %17s %17s\n' "" "ms/AU" "ms/AU" "pc/gst" "pc / gst" "pc / gst"
for n in $CLIENTS; do
  [[ " $SKIPPED " != *" $n "* ]] || { printf '%7s %s\n' "$n" "skipped (too few local addresses)"; continue; }
  ratio=-
  if [[ -n ${R[pc.$n.ms]:-} && -n ${R[gst.$n.ms]:-} ]]; then
    ratio=$(calc "b = ${R[gst.$n.ms]}; printf \"%.2fx\", (b > 0 ? ${R[pc.$n.ms]} / b : 0)")
  fi
  printf '%7s %11s %11s %9s %17s %17s\n' "$n" "$(v "pc.$n.ms")" "$(v "gst.$n.ms")" "$ratio" \
    "$(v "pc.$n.rss") / $(v "gst.$n.rss")" "$(v "pc.$n.fps") / $(v "gst.$n.fps")"
done
echo "RSS before any reader: printcast $RSS_IDLE_PC MiB (pulling the camera), gst $RSS_IDLE_GST MiB (media not prepared)"
for n in $CLIENTS; do
  [[ " $SKIPPED " != *" $n "* ]] || continue
  echo "$n reader(s): server CPU % of a core pc $(v "pc.$n.pct") / gst $(v "gst.$n.pct");" \
    "slowest reader AU/s $(v "pc.$n.slowest") / $(v "gst.$n.slowest");" \
    "readers alive $(v "pc.$n.alive") / $(v "gst.$n.alive"); printcast queue drops $(v "pc.$n.dropped");" \
    "readers' CPU % $(v "pc.$n.readers_pct") / $(v "gst.$n.readers_pct"); camera CPU % $(v "pc.$n.camera_pct") / $(v "gst.$n.camera_pct")"
  if [[ $(v "pc.$n.gone") != 0 || $(v "gst.$n.gone") != 0 ]]; then
    echo "  (threads that ended within the window, their CPU in it not counted: pc $(v "pc.$n.gone"), gst $(v "gst.$n.gone"))"
  fi
done
# The cost of each reader beyond the first round's: the CPU the extra readers added per AU they got.
BASE=""
for n in $CLIENTS; do [[ -z ${R[pc.$n.ms]:-} || -z ${R[gst.$n.ms]:-} ]] || { BASE=$n; break; }; done
marginal() {  # side, N: ms per extra delivered AU from the BASE round to round N
  calc "a = ${R[$1.$2.cpu_ns]} / ${R[$1.$2.secs]} - ${R[$1.$BASE.cpu_ns]} / ${R[$1.$BASE.secs]};
        f = ${R[$1.$2.aus]} / ${R[$1.$2.secs]} - ${R[$1.$BASE.aus]} / ${R[$1.$BASE.secs]};
        printf \"%.4f\", (f > 0 ? a / 1e6 / f : 0)"
}
for n in $CLIENTS; do
  [[ -n $BASE && $n != "$BASE" && -n ${R[pc.$n.ms]:-} && -n ${R[gst.$n.ms]:-} ]] || continue
  mp=$(marginal pc "$n") mg=$(marginal gst "$n")
  echo "each reader beyond $BASE (round $n): pc $mp / gst $mg ms per AU it got" \
    "($(calc "printf \"%.2fx\", ($mg > 0 ? $mp / $mg : 0)")); the round's kernel (sys) share pc $(v "pc.$n.sys") / gst $(v "gst.$n.sys")"
done
echo "(ms/AU = the server's CPU (user+sys) in the window / the AUs all readers muxed in it; target: pc/gst <= 0.5."
echo " Readers: ffmpeg -rtsp_transport tcp, up to $PER_ADDRESS per local address: ${ADDRS[*]}."
echo " Not counted: the camera's x264 and the readers, which share the $(nproc) cores.)"
