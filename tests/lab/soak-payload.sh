#!/bin/bash
# SPDX-License-Identifier: MIT
# The lab's soak payload (run-lab.sh --soak): bench/soak.sh on the virtual board's screen and
# touch with vivid's webcam as the camera (640x480, 25 fps), unplugged every SOAK_UNPLUG_EVERY
# minutes (default 10) the way the kernel offers it for a platform device: unbinding vivid.0 from
# its driver (the node goes away, open descriptors get ENODEV, as on a USB unplug) and binding it
# again (a new /dev/video0 with the same by-path name).
#   soak-payload.sh LAB_ENV   (SRC_DIR, BUILD_DIR, RESULTS, KVER, SOAK_MINUTES; run by vm-payload.sh)
# Writes RESULTS/soak.log and RESULTS/soak.rc (bench/soak.sh's exit code).
set -u
# shellcheck disable=SC1090
. "$1"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp LANG=C.UTF-8
driver=/sys/bus/platform/drivers/vivid
export SOAK_MINUTES=${SOAK_MINUTES:-60} SOAK_UNPLUG_EVERY=${SOAK_UNPLUG_EVERY:-10} SOAK_WARMUP=${SOAK_WARMUP:-2}
export SOAK_STREAMER_ARGS="--board virtual --device /dev/video0 --resolution 640x480 --desired-fps 25 --display-fps 5"
export SOAK_UNPLUG="echo vivid.0 > $driver/unbind" SOAK_REPLUG="echo vivid.0 > $driver/bind"
{
  echo "kernel: $(uname -r), $(nproc) CPUs; camera: $(cat /sys/class/video4linux/video0/name 2>&1)"
  bash "$SRC_DIR/bench/soak.sh" "$BUILD_DIR"
  echo $? >"$RESULTS/soak.rc"
} >"$RESULTS/soak.log" 2>&1
