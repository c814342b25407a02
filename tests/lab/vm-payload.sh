#!/bin/bash
# SPDX-License-Identifier: MIT
# The lab payload, run by the VM's /init inside the host's tree (chroot): runs each lab binary,
# the bring-up probe and writes results/ (summary, per-check logs, gtest XML) to the build share.
#   vm-payload.sh LAB_ENV   (written by run-lab.sh: SRC_DIR, BUILD_DIR, RESULTS, KVER, VICODEC_*)
set -u
# shellcheck disable=SC1090
. "$1"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp LANG=C.UTF-8
export PRINTCAST_LAB=1 PRINTCAST_LAB_RESULTS="$RESULTS"
# lab_m2m: why vicodec is absent (run-lab.sh could not build it), or its .ko for a reload.
export PRINTCAST_LAB_VICODEC_SKIP="${VICODEC_SKIP:-}" PRINTCAST_LAB_VICODEC_KO="${VICODEC_KO:-}"
# run-lab.sh --bench / --soak: the benchmark or the soak instead of the checks.
if [ "${MODE:-test}" = bench ] || [ "${MODE:-test}" = soak ]; then
  bash "$SRC_DIR/tests/lab/$MODE-payload.sh" "$1"
  dmesg >"$RESULTS/dmesg.txt" 2>&1
  echo "payload $(cut -d' ' -f1 /proc/uptime)" >"$RESULTS/done"
  sync
  exit 0
fi
summary="$RESULTS/summary"
: >"$summary"

now() { cut -d' ' -f1 /proc/uptime; }
# run NAME TIMEOUT COMMAND...: one check; its output goes to NAME.log, its result to the summary.
run() {
  local name=$1 limit=$2
  shift 2
  local t0 rc
  t0=$(now)
  echo "lab-vm: running $name"
  timeout --kill-after=5 "$limit" "$@" >"$RESULTS/$name.log" 2>&1
  rc=$?
  echo "$name $rc $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')" >>"$summary"
  echo "lab-vm: $name exit $rc"
}

# What the kernel gave us, for the logs.
{
  echo "kernel: $(uname -r)"
  ls -l /dev/fb* /dev/dri/ /dev/video* /dev/input/ /dev/uinput 2>&1
  cat /sys/class/graphics/fb0/name /sys/class/graphics/fb0/virtual_size 2>&1
  cat /sys/class/video4linux/*/name 2>&1
  lsmod
} >"$RESULTS/devices.txt" 2>&1

# Every lab test binary (gtest): XML next to its log.
while read -r bin; do
  [ -n "$bin" ] || continue
  name=$(basename "$bin")
  run "$name" 300 "$bin" --gtest_output="xml:$RESULTS/$name.xml"
  # A test binary that died (a crash, the timeout) leaves the streamers it started running, holding
  # the camera open: stop them (by their executable's path).
  # One find, not a readlink per process: each fork costs ~50 ms under TCG.
  leftover=$(find /proc -mindepth 2 -maxdepth 2 -name exe -lname "$BUILD_DIR/apps/streamer/printcast-streamer" \
    2>/dev/null | cut -d/ -f3 | tr '\n' ' ')
  if [ -n "$leftover" ]; then
    # shellcheck disable=SC2086
    kill -9 $leftover 2>/dev/null
    echo "lab-vm: $name left printcast-streamer running (pid $leftover); killed it"
    sleep 1
  fi
  # lab_usb_discovery reloads vivid with two devices and by-id links and puts the lab's vivid back
  # itself; should it die before it could, do it here, so the checks after it still find one vivid
  # at /dev/video0.
  rm -f /dev/v4l/by-id/usb-printcast_Lab_Vivid_* 2>/dev/null
  if [ "$(cat /sys/module/vivid/parameters/n_devs 2>/dev/null)" != 1 ]; then
    echo "lab-vm: $name left vivid with n_devs=$(cat /sys/module/vivid/parameters/n_devs 2>/dev/null); reloading it"
    rmmod vivid 2>/dev/null
    modprobe vivid n_devs=1 node_types=0x1 || echo "lab-vm: modprobe vivid failed"
  fi
done <"$BUILD_DIR/lab/lab.binaries"

# The bring-up probe against the VM's devices, with a uinput touchscreen named like the
# printers' panel so there is a touch device to inject into and read back.
probe="$BUILD_DIR/apps/probe/printcast-probe"
touchdev="$BUILD_DIR/tests/lab/printcast-lab-touchscreen"
if [ -x "$probe" ]; then
  touch_pid=""
  if [ -x "$touchdev" ]; then
    "$touchdev" --name hyn_ts --size 800x480 >"$RESULTS/touchscreen.log" 2>&1 &
    touch_pid=$!
    for _ in $(seq 50); do grep -q ready "$RESULTS/touchscreen.log" 2>/dev/null && break; sleep 0.1; done
  fi
  # The ks1 board gives the orientation (rot180), the display node and the panel's name and range.
  run probe 180 "$probe" --test --board anycubic-ks1 --frames 30 --camera-fps 25 \
    --image "$RESULTS/probe-display.jpg" --json "$RESULTS/probe-report.json"
  [ -n "$touch_pid" ] && kill "$touch_pid" 2>/dev/null
else
  echo "lab-vm: printcast-probe not built"
fi

dmesg >"$RESULTS/dmesg.txt" 2>&1
echo "payload $(now)" >"$RESULTS/done"
sync
