#!/bin/sh
# SPDX-License-Identifier: MIT
# The lab VM's /init (busybox sh): loads the device modules, mounts the host over 9p, chroots into
# the host's tree and runs tests/lab/vm-payload.sh there, then powers off.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

# Modules in the order run-lab.sh resolved (dependencies first): bochs first so it is fb0.
while read -r ko; do
  name=${ko##*/}
  name=${name%.ko}
  params=""
  case $name in
    vivid) params="n_devs=1 node_types=0x1" ;;
    vicodec) params="multiplanar=1" ;;  # the multiplanar API, as the Raspberry Pi's encoder
  esac
  # shellcheck disable=SC2086
  insmod "$ko" $params || echo "lab-init: insmod $ko failed"
done </etc/modules.order

# Loopback only (-nic none): the streamer and its clients talk over 127.0.0.1.
ip link set lo up || echo "lab-init: cannot bring up lo"

fail() {
  echo "lab-init: $*"
  poweroff -f
}

# The host's / read-only; then the VM's own scratch file systems; then the source tree (read-only)
# and the build tree (read-write) at their own paths, last, so that a tree under /tmp (a CI
# clone, say) is not hidden by the VM's tmpfs on /tmp.
opts=trans=virtio,version=9p2000.L,msize=524288,cache=none
mount -t 9p -o "$opts,ro" hostroot /rootfs || fail "cannot mount hostroot"
mkdir -p /build
mount -t 9p -o "$opts" build /build || fail "cannot mount build"
[ -f /build/lab/lab.env ] || fail "no lab/lab.env in the build share"
. /build/lab/lab.env
umount /build
mount -t proc proc /rootfs/proc
mount -t sysfs sysfs /rootfs/sys
mount -t devtmpfs devtmpfs /rootfs/dev
mkdir -p /rootfs/dev/pts /rootfs/dev/shm 2>/dev/null
mount -t devpts devpts /rootfs/dev/pts
mount -t tmpfs tmpfs /rootfs/dev/shm
mount -t tmpfs tmpfs /rootfs/tmp
mount -t tmpfs tmpfs /rootfs/run
mount -t tmpfs tmpfs /rootfs/var/tmp 2>/dev/null
mkdir -p "/rootfs$SRC_DIR" 2>/dev/null
mount -t 9p -o "$opts,ro" src "/rootfs$SRC_DIR" || fail "cannot mount the source share at $SRC_DIR"
mkdir -p "/rootfs$BUILD_DIR" 2>/dev/null
mount -t 9p -o "$opts" build "/rootfs$BUILD_DIR" || fail "cannot mount the build share at $BUILD_DIR"
# The host's /lib/modules is the same kernel's: modprobe/rmmod work in the chroot. Its module
# state (modules.dep) stays read-only, which modprobe does not need.
echo "$(cut -d' ' -f1 /proc/uptime)" >"/rootfs$RESULTS/boot-seconds"

chroot /rootfs /bin/bash "$SRC_DIR/tests/lab/vm-payload.sh" "$BUILD_DIR/lab/lab.env"
echo "lab-init: payload exited $?"
sync
poweroff -f
