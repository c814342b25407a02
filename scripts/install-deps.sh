#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install the Debian bookworm packages printcast needs, only those missing.
#   scripts/install-deps.sh build   - to build and run the streamer
#   scripts/install-deps.sh test    - plus what the tests and benchmarks use (ffmpeg, gtest...)
set -euo pipefail
what=${1:-build}

build_pkgs=(build-essential cmake ninja-build pkg-config
  libturbojpeg0-dev libx264-dev libmicrohttpd-dev libyuv-dev
  libv4l-dev libdrm-dev libevdev-dev libva-dev nettle-dev
  libavcodec-dev  # H.264 decode for snapshots from H.264 cameras; brings libavutil-dev
  libgnutls28-dev  # the TLS client of rtmps:// publishing (transport/src/tls_client_gnutls.cpp)
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libpugixml-dev  # XML of ONVIF camera discovery (transport/include/printcast/transport/onvif.h)
  libmosquitto-dev)  # the MQTT video responder of Anycubic's go-klipper firmware (anycubic_mqtt.h)
test_pkgs=(libgtest-dev libgmock-dev libbenchmark-dev ffmpeg curl python3 clang-format
  qemu-system-x86 linux-image-amd64 busybox-static kmod  # these four: the lab VM (docs/lab.md)
  linux-source-6.1  # the lab's vicodec, built out of tree (+ linux-headers-<booted version>, below)
  v4l-utils  # v4l2-ctl: the lab compares its M2M encode rate with ours (lab_m2m)
  ustreamer  # the lab benchmark (make bench-lab)
  prometheus  # promtool check metrics (integration)
  mosquitto mosquitto-clients  # a real MQTT broker (TLS) for the Anycubic responder (integration_anycubic_mqtt)
  stunnel4 openssl  # a TLS terminator before ffmpeg's RTMP listener: the rtmps:// publish test (integration)
  python3-websockets  # a real WebSocket client pushing JPEGs like an ESP32-CAM (integration)
  gstreamer1.0-tools gstreamer1.0-libav  # gst-launch-1.0 rtspsrc ! avdec_h264: a real RTSP player (integration)
  gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-ugly  # gst-rtsp-server: a real RTSP camera for the RTSP pull tests (integration)
  clang-14 libclang-rt-14-dev  # libFuzzer (scripts/fuzz.sh)
  chromium nodejs)  # tests/browser: headless Chromium driven by playwright-core (npm ci below)
# The cross stage (scripts/cross-test.sh): Debian's cross compilers, qemu-user, what
# scripts/make-sysroot.sh uses (dpkg-dev's dpkg-source, the archive keyring, make for
# libmicrohttpd), ccache, zip/unzip for the Rinkhals package.
cross_pkgs=(crossbuild-essential-armhf crossbuild-essential-arm64 g++-riscv64-linux-gnu qemu-user-static
  debian-archive-keyring dpkg-dev make xz-utils ccache zip unzip binutils)

pkgs=("${build_pkgs[@]}")
if [ "$what" = test ]; then pkgs+=("${test_pkgs[@]}" "${cross_pkgs[@]}"); fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
else
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The lab builds vicodec against the headers of exactly the kernel it boots: the newest
# /boot/vmlinuz-<ver> whose /lib/modules/<ver> exists (tests/lab/run-lab.sh), which need not be
# what linux-headers-amd64 points at today. A version no longer in the archive is reported by the lab.
if [ "$what" = test ]; then
  lab_kver=""
  for k in $(find /boot -maxdepth 1 -name 'vmlinuz-*' 2>/dev/null | sed 's|/boot/vmlinuz-||' | sort -V -r); do
    if [ -d "/lib/modules/$k/kernel" ]; then lab_kver=$k; break; fi
  done
  if [ -n "$lab_kver" ] && ! dpkg-query -W -f='${Status}' "linux-headers-$lab_kver" 2>/dev/null | grep -q "install ok installed"; then
    echo "install-deps: installing linux-headers-$lab_kver (the lab's kernel)"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "linux-headers-$lab_kver" ||
      echo "install-deps: linux-headers-$lab_kver is not installable: the lab will skip vicodec (lab_m2m)" >&2
  fi
fi

# tests/browser: playwright-core and the players, pinned by package-lock.json (never
# `npx playwright install`: the tests use Debian's /usr/bin/chromium).
if [ "$what" = test ]; then
  browser_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
  if ! command -v npm >/dev/null; then
    echo "install-deps: installing npm"
    $SUDO apt-get install -y -qq --no-install-recommends npm
  fi
  if [ ! -d "$browser_dir/node_modules" ] || [ "$browser_dir/package-lock.json" -nt "$browser_dir/node_modules" ]; then
    echo "install-deps: npm ci in tests/browser"
    (cd "$browser_dir" && npm ci --no-audit --no-fund && touch node_modules)
  fi
fi
