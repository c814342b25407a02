#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The hardware lab runner: boots Debian's own kernel in QEMU (TCG) with vivid, bochs, uinput and
# vicodec (built out of tree here: linux-headers-<ver>, linux-source-6.1), runs the lab_* test binaries, the streamer check and the bring-up probe inside it, and reports.
#
#   tests/lab/run-lab.sh BUILD_DIR [LAB_BINARY...]
#   tests/lab/run-lab.sh --bench BUILD_DIR    (`make bench-lab`: the MJPEG benchmark instead of
#                                             the checks, tests/lab/bench-payload.sh; prints a
#                                             table, BUILD_DIR/lab/bench.md; never fails on speed)
#   tests/lab/run-lab.sh --soak BUILD_DIR     (bench/soak.sh in the VM for SOAK_MINUTES, default
#                                             60, with vivid unplugged every SOAK_UNPLUG_EVERY
#                                             minutes, default 10: tests/lab/soak-payload.sh;
#                                             prints its log, BUILD_DIR/lab/soak.log; fails when
#                                             the streamer dies or a replugged camera stays away)
#
# BUILD_DIR is a configured and built printcast build tree; LAB_BINARY are the lab test binaries
# (absolute paths inside BUILD_DIR; missing ones are reported as skipped). Everything the lab
# makes goes to BUILD_DIR/lab/: the cached vmlinux and initramfs, console.log, results/ (gtest
# XML, exit codes, logs) and probe-report.json.
#
# How the VM sees the host (docs/lab.md): the initramfs holds busybox and the kernel modules; its
# /init loads the modules, mounts the host's / read-only over 9p and BUILD_DIR read-write over it
# at the same path, then chroots into the host's tree and runs tests/lab/vm-payload.sh. The host's
# dynamically linked binaries and their libraries therefore run unchanged in the VM.
#
# Exit: 0 all passed; 1 a failure; 77 skipped (QEMU, busybox-static, kmod or the Debian kernel and
# its modules are not installed: the message names the package). vicodec that cannot be built
# (headers or source missing) does not stop the lab: it is reported as "SKIP vicodec: <reason>"
# and lab_m2m's tests skip, which under CI counts as a failure.
# Environment: LAB_TIMEOUT (seconds for the VM, default 600), LAB_SMP (default 2).
set -euo pipefail

mode="test"
if [ "${1:-}" = --bench ] || [ "${1:-}" = --soak ]; then
  mode=${1#--}
  shift
fi
if [ $# -lt 1 ]; then
  echo "usage: $0 BUILD_DIR [LAB_BINARY...] | $0 --bench BUILD_DIR | $0 --soak BUILD_DIR" >&2
  exit 2
fi
build_dir=$(cd "$1" && pwd)
shift
src_dir=$(cd "$(dirname "$0")/../.." && pwd)
lab_dir="$build_dir/lab"
timeout_s=${LAB_TIMEOUT:-600}
if [ "$mode" = soak ]; then timeout_s=${LAB_TIMEOUT:-$((${SOAK_MINUTES:-60} * 60 + 600))}; fi
smp=${LAB_SMP:-2}

# Under CI (CI=true or PRINTCAST_STRICT_SKIPS=1) nothing may skip: a missing prerequisite, a lab
# binary that was not built, a binary that exits 77 and a gtest case skipped without a reason of
# the machine ("machine: ...", see tests/support/gtest_main.cpp) are failures.
strict=0
if [ "${CI:-}" = true ] || [ "${PRINTCAST_STRICT_SKIPS:-0}" = 1 ]; then strict=1; fi
skip() {
  echo "lab: SKIPPED: $*" >&2
  if [ "$strict" = 1 ]; then
    echo "lab: FAIL: skipping is a failure under CI" >&2
    exit 1
  fi
  exit 77
}
log() { echo "lab: $*"; }
t_start=$(date +%s.%N)
elapsed() { awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# --- prerequisites (scripts/install-deps.sh test installs them) ----------------------------------
qemu=$(command -v qemu-system-x86_64 || true)
[ -n "$qemu" ] || skip "qemu-system-x86_64 is not installed (Debian package qemu-system-x86; run scripts/install-deps.sh test)"
busybox=/bin/busybox
[ -x "$busybox" ] || skip "busybox is not installed (Debian package busybox-static)"
if ! { ldd "$busybox" 2>&1 || true; } | grep -q 'not a dynamic'; then
  skip "$busybox is not statically linked (install busybox-static)"
fi
command -v modprobe >/dev/null && command -v depmod >/dev/null || skip "kmod (modprobe, depmod) is not installed"
# The newest installed Debian kernel whose modules are present.
kver=""
for k in $(ls -1 /boot/vmlinuz-* 2>/dev/null | sed 's|/boot/vmlinuz-||' | sort -V -r); do
  if [ -d "/lib/modules/$k/kernel" ]; then
    kver=$k
    break
  fi
done
[ -n "$kver" ] || skip "no Debian kernel with modules in /boot and /lib/modules (package linux-image-amd64)"
vmlinuz=/boot/vmlinuz-$kver
moddir=/lib/modules/$kver
mkdir -p "$lab_dir" "$lab_dir/results"

# --- (a) an uncompressed vmlinux (boots via PVH in ~4 s instead of 8 s), cached --------------------
vmlinux="$lab_dir/vmlinux-$kver"
if [ ! -s "$vmlinux" ] || [ "$vmlinux" -ot "$vmlinuz" ]; then
  log "extracting $vmlinux from $vmlinuz"
  # extract-vmlinux: find each compression magic, decompress from there, keep the first ELF.
  tmp="$vmlinux.tmp"
  try_decomp() {  # $1 = magic (grep -P bytes), $2 = decompressor command
    local pos
    for pos in $(LC_ALL=C grep -obUaP "$1" "$vmlinuz" | cut -d: -f1); do
      tail -c+$((pos + 1)) "$vmlinuz" | $2 >"$tmp" 2>/dev/null || true
      if [ -s "$tmp" ] && head -c4 "$tmp" | grep -q $'\x7fELF'; then
        mv "$tmp" "$vmlinux"
        return 0
      fi
    done
    rm -f "$tmp"
    return 1
  }
  xz="xz -dc"
  command -v xz >/dev/null || xz="$busybox xzcat"
  try_decomp '\xFD\x37\x7A\x58\x5A\x00' "$xz" || try_decomp '\x1F\x8B\x08' 'gzip -dc' ||
    try_decomp '\x28\xB5\x2F\xFD' 'zstd -dc' || try_decomp '\x02\x21\x4C\x18' 'lz4 -dc' ||
    { echo "lab: FAIL: found no XZ/gzip/zstd/LZ4 payload in $vmlinuz that decompresses to an ELF vmlinux" >&2; exit 1; }
fi

# --- (a2) vicodec, a V4L2 memory-to-memory encoder (FWHT), for lab_m2m: built out of tree, cached --
# Debian's kernel builds neither vicodec nor the M2M core (CONFIG_V4L2_MEM2MEM_DEV unset), but both
# build from linux-source-<series> against linux-headers-<kver> (exactly the booted image's) in
# seconds and load unsigned. Cached as BUILD_DIR/lab/vicodec-<kver>/{v4l2-mem2mem,vicodec}.ko.
# Without them the lab still runs; lab_m2m skips with the reason (VICODEC_SKIP), and under CI that
# is a failure like any other missing prerequisite.
vicodec_dir="$lab_dir/vicodec-$kver"
vicodec_skip=""
vicodec_headers=/usr/src/linux-headers-$kver
vicodec_series=$(echo "$kver" | cut -d. -f1,2)
vicodec_tar=/usr/src/linux-source-$vicodec_series.tar.xz
if [ ! -s "$vicodec_dir/vicodec.ko" ] || [ ! -s "$vicodec_dir/v4l2-mem2mem.ko" ] ||
  [ "$vicodec_headers/Makefile" -nt "$vicodec_dir/vicodec.ko" ] || [ "$vicodec_tar" -nt "$vicodec_dir/vicodec.ko" ]; then
  if [ ! -f "$vicodec_headers/Makefile" ]; then
    vicodec_skip="vicodec not built: linux-headers-$kver is not installed (it must match the booted linux-image exactly; scripts/install-deps.sh test)"
  elif [ ! -f "$vicodec_tar" ]; then
    vicodec_skip="vicodec not built: $vicodec_tar is missing (package linux-source-$vicodec_series; scripts/install-deps.sh test)"
  elif ! command -v make >/dev/null; then
    vicodec_skip="vicodec not built: make is not installed (build-essential)"
  else
    log "building vicodec and v4l2-mem2mem for $kver out of tree"
    vbuild="$lab_dir/vicodec-build"
    rm -rf "$vbuild" "$vicodec_dir"
    mkdir -p "$vbuild/src"
    src_prefix="linux-source-$vicodec_series/drivers/media"
    if tar -xJf "$vicodec_tar" -C "$vbuild/src" "$src_prefix/v4l2-core/v4l2-mem2mem.c" \
      "$src_prefix/test-drivers/vicodec" >"$vbuild/build.log" 2>&1; then
      cp "$vbuild/src/$src_prefix/v4l2-core/v4l2-mem2mem.c" "$vbuild/src/$src_prefix"/test-drivers/vicodec/*.[ch] "$vbuild/"
      # vicodec-objs as in drivers/media/test-drivers/vicodec/Makefile.
      sed -n 's/^vicodec-objs[[:space:]]*:=/vicodec-objs :=/p' "$vbuild/src/$src_prefix/test-drivers/vicodec/Makefile" >"$vbuild/Kbuild"
      echo "obj-m += v4l2-mem2mem.o vicodec.o" >>"$vbuild/Kbuild"
      if make -C "$vicodec_headers" M="$vbuild" -j"$(nproc)" modules >>"$vbuild/build.log" 2>&1 &&
        [ -s "$vbuild/vicodec.ko" ] && [ -s "$vbuild/v4l2-mem2mem.ko" ]; then
        mkdir -p "$vicodec_dir"
        cp "$vbuild/vicodec.ko" "$vbuild/v4l2-mem2mem.ko" "$vicodec_dir/"
        rm -rf "$vbuild"
      else
        vicodec_skip="vicodec not built: make -C $vicodec_headers M=... modules failed (log $vbuild/build.log): $(tail -n 1 "$vbuild/build.log")"
      fi
    else
      vicodec_skip="vicodec not built: cannot extract drivers/media from $vicodec_tar: $(tail -n 1 "$vbuild/build.log")"
    fi
  fi
fi
if [ -n "$vicodec_skip" ]; then
  log "SKIP vicodec: $vicodec_skip"
fi

# --- (b) the initramfs: busybox, the modules (with dependencies) and /init, cached ----------------
# Top-level modules in load order (lab.md): bochs first so it is fb0; then vicodec (extra/, out of
# tree) after vivid, so vivid stays /dev/video0.
top_modules=(bochs evdev uinput vivid virtio_pci 9pnet_virtio 9p)
initramfs="$lab_dir/initramfs-$kver.cpio.gz"
stamp_src=("$src_dir/tests/lab/run-lab.sh" "$src_dir/tests/lab/init.sh" "$busybox")
[ -z "$vicodec_skip" ] && stamp_src+=("$vicodec_dir/vicodec.ko" "$vicodec_dir/v4l2-mem2mem.ko")
rebuild=0
[ -s "$initramfs" ] || rebuild=1
for f in "${stamp_src[@]}"; do [ "$f" -nt "$initramfs" ] && rebuild=1; done
if [ $rebuild = 1 ]; then
  log "building $initramfs (kernel $kver)"
  root="$lab_dir/initramfs-root"
  rm -rf "$root"
  mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,rootfs,lib/modules/"$kver"}
  cp "$busybox" "$root/bin/busybox"
  for applet in sh mount umount mkdir insmod modprobe rmmod lsmod chroot cat echo sleep poweroff \
                ls mknod ln switch_root dmesg ip; do
    ln -s busybox "$root/bin/$applet"
  done
  : >"$root/etc/modules.order"
  declare -A seen=()
  add_module() {  # $1 = a module of the installed kernel; it and its dependencies, in load order
    local verb path rel
    # "insmod /lib/modules/<ver>/kernel/....ko [params]" lines, dependencies first; builtin ones say "builtin".
    while read -r verb path _; do
      [ "$verb" = insmod ] || continue
      rel=${path#"$moddir"/}
      if [ -z "${seen[$rel]:-}" ]; then
        seen[$rel]=1
        mkdir -p "$root/lib/modules/$kver/$(dirname "$rel")"
        cp "$path" "$root/lib/modules/$kver/$rel"
        echo "/lib/modules/$kver/$rel" >>"$root/etc/modules.order"
      fi
    done < <(modprobe -S "$kver" --show-depends "$1")
  }
  for m in "${top_modules[@]}"; do add_module "$m"; done
  if [ -z "$vicodec_skip" ]; then
    # The out-of-tree pair: the installed kernel's modules they need first (modinfo depends:
    # videodev, videobuf2-vmalloc, ...), then v4l2-mem2mem, then vicodec, under extra/.
    mkdir -p "$root/lib/modules/$kver/extra"
    for dep in $(modinfo -F depends "$vicodec_dir/v4l2-mem2mem.ko" "$vicodec_dir/vicodec.ko" | tr ',' ' '); do
      [ "$dep" = v4l2-mem2mem ] || add_module "$dep"
    done
    for ko in v4l2-mem2mem vicodec; do
      cp "$vicodec_dir/$ko.ko" "$root/lib/modules/$kver/extra/"
      echo "/lib/modules/$kver/extra/$ko.ko" >>"$root/etc/modules.order"
    done
  fi
  cp "$moddir"/modules.order "$moddir"/modules.builtin* "$root/lib/modules/$kver/" 2>/dev/null || true
  depmod -b "$root" "$kver"
  cp "$src_dir/tests/lab/init.sh" "$root/init"
  chmod +x "$root/init"
  cpio="cpio -o -H newc --quiet"
  command -v cpio >/dev/null || cpio="$busybox cpio -o -H newc"
  (cd "$root" && find . | $cpio | gzip -1) >"$initramfs.tmp"
  mv "$initramfs.tmp" "$initramfs"
fi

# --- the payload's inputs: which binaries to run ----------------------------------------------------
results="$lab_dir/results"
rm -rf "$results"
mkdir -p "$results"
{
  echo "SRC_DIR=$src_dir"
  echo "BUILD_DIR=$build_dir"
  echo "RESULTS=$results"
  echo "KVER=$kver"
  echo "MODE=$mode"
  echo "SOAK_MINUTES=${SOAK_MINUTES:-60}"
  echo "SOAK_UNPLUG_EVERY=${SOAK_UNPLUG_EVERY:-10}"
  echo "SOAK_WARMUP=${SOAK_WARMUP:-2}"
  # Sourced by /init (busybox sh) and vm-payload.sh: the reason in single quotes, without any.
  echo "VICODEC_SKIP='$(echo "$vicodec_skip" | tr -d "'")'"
  if [ -z "$vicodec_skip" ]; then echo "VICODEC_KO=$vicodec_dir/vicodec.ko"; else echo "VICODEC_KO="; fi
} >"$lab_dir/lab.env"
: >"$lab_dir/lab.binaries"
not_built=0
for bin in "$@"; do
  if [ -x "$bin" ]; then
    echo "$bin" >>"$lab_dir/lab.binaries"
  else
    log "SKIP $(basename "$bin"): not built ($bin)"
    not_built=$((not_built + 1))
  fi
done

# --- (c) boot ---------------------------------------------------------------------------------------
log "booting kernel $kver under TCG (smp $smp, timeout ${timeout_s}s)"
t_boot=$(date +%s.%N)
set +e
timeout --kill-after=10 "$timeout_s" "$qemu" -machine pc -m 1G -smp "$smp" -nographic -no-reboot -nic none \
  -kernel "$vmlinux" -initrd "$initramfs" \
  -append "console=ttyS0 panic=-1 quiet" \
  -vga none -device VGA,xres=800,yres=480 -accel tcg -cpu max \
  -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap,id=hostroot" \
  -virtfs "local,path=$build_dir,mount_tag=build,security_model=none,multidevs=remap,id=build" \
  -virtfs "local,path=$src_dir,mount_tag=src,security_model=none,readonly=on,multidevs=remap,id=src" \
  </dev/null >"$lab_dir/console.log" 2>&1
qemu_rc=$?
set -e
boot_s=$(awk -v a="$t_boot" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
if [ $qemu_rc = 124 ] || [ $qemu_rc = 137 ]; then
  echo "lab: FAIL: the VM did not power off within ${timeout_s}s; console tail:" >&2
  tail -n 40 "$lab_dir/console.log" >&2
  exit 1
fi

# --- (d) report -------------------------------------------------------------------------------------
if [ ! -f "$results/done" ]; then
  echo "lab: FAIL: the VM stopped (qemu exit $qemu_rc) without finishing the payload; console tail:" >&2
  tail -n 60 "$lab_dir/console.log" >&2
  exit 1
fi
if [ $mode = bench ]; then
  cat "$results/bench.log" 2>/dev/null
  if [ ! -s "$results/bench.md" ]; then
    echo "lab: FAIL: the benchmark wrote no table (results/bench.log)" >&2
    exit 1
  fi
  cp "$results/bench.md" "$lab_dir/bench.md"
  cat "$lab_dir/bench.md"
  log "VM ${boot_s}s, total $(elapsed)s; table in $lab_dir/bench.md, runs in $results/bench.jsonl"
  exit 0
fi
if [ $mode = soak ]; then
  cp "$results/soak.log" "$lab_dir/soak.log" 2>/dev/null
  cat "$lab_dir/soak.log" 2>/dev/null
  rc=$(cat "$results/soak.rc" 2>/dev/null || echo 1)
  log "VM ${boot_s}s, total $(elapsed)s; soak exit $rc; log in $lab_dir/soak.log"
  [ "$rc" = 0 ] || exit 1
  exit 0
fi
failed=0
total=0
# The probe's exit code is a bit mask; its report says which subsystem failed and why. A subsystem
# whose backend is not built yet is a skip (reported), not a pass.
probe_lines() {
  python3 - "$1" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
for key in ("camera", "display", "touch", "encoders"):
    r = report.get(key, {})
    status = r.get("status", "missing")
    why = "; ".join(r.get("errors", [])) or r.get("details", {}).get("reason", "")
    print(key, status, why)
PY
}
# "N tests, F failed, S skipped" and each skipped test's reason, from a gtest XML report.
gtest_counts() {
  python3 - "$1" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
cases = root.findall(".//testcase")
failed = [c for c in cases if c.find("failure") is not None]
skipped = [c for c in cases if c.find("skipped") is not None or c.get("result") == "skipped"]
unexplained = [c for c in skipped if "machine: " not in ((c.find("skipped").get("message") or "") if c.find("skipped") is not None else "")]
print(f"{len(cases)} tests, {len(failed)} failed, {len(skipped)} skipped ({len(unexplained)} without a reason of the machine)")
for c in skipped:
    s = c.find("skipped")
    why = (s.get("message") if s is not None else "") or ""
    print(f"      skipped {c.get('classname')}.{c.get('name')}: {why.strip().splitlines()[0] if why.strip() else ''}")
PY
}
while read -r name rc secs; do
  total=$((total + 1))
  counts=""
  if [ -s "$results/$name.xml" ] && command -v python3 >/dev/null; then
    counts=$(gtest_counts "$results/$name.xml" 2>/dev/null || true)
  fi
  if [ "$name" = probe ] && [ -s "$results/probe-report.json" ] && command -v python3 >/dev/null; then
    log "probe exit $rc (${secs}s), report $lab_dir/probe-report.json:"
    while read -r sub status why; do
      case $status in
        pass) log "  PASS probe $sub" ;;
        not-built|skipped) log "  SKIP probe $sub: $status${why:+: $why}" ;;
        *) failed=$((failed + 1)); log "  FAIL probe $sub: $status${why:+: $why}" ;;
      esac
    done < <(probe_lines "$results/probe-report.json")
    continue
  fi
  if [ "$rc" = 0 ] && [ "$strict" = 1 ] && [ -n "$counts" ] && ! grep -q '(0 without a reason of the machine)' <<<"$counts" &&
    ! grep -q '^0 tests\| 0 skipped' <<<"$counts"; then
    failed=$((failed + 1))
    log "FAIL $name (${secs}s): tests skipped under CI: $counts"
  elif [ "$rc" = 0 ]; then
    log "PASS $name (${secs}s)${counts:+: $counts}"
  elif [ "$rc" = 77 ] && [ "$strict" = 1 ]; then
    failed=$((failed + 1))
    log "FAIL $name (${secs}s): skipped (exit 77) under CI: $(tail -n 1 "$results/$name.log" 2>/dev/null)"
  elif [ "$rc" = 77 ]; then
    log "SKIP $name (${secs}s): $(tail -n 1 "$results/$name.log" 2>/dev/null)"
  else
    failed=$((failed + 1))
    log "FAIL $name (exit $rc, ${secs}s)${counts:+: $counts}; log tail ($results/$name.log):"
    tail -n 30 "$results/$name.log" 2>/dev/null | sed 's/^/    /'
  fi
done <"$results/summary"
[ -f "$results/probe-report.json" ] && cp "$results/probe-report.json" "$lab_dir/probe-report.json"
if [ -n "$vicodec_skip" ]; then
  if [ "$strict" = 1 ]; then
    failed=$((failed + 1))
    log "FAIL vicodec (lab_m2m has no encoder to test; a skip is a failure under CI): $vicodec_skip"
  else
    log "SKIP vicodec (lab_m2m's tests skip): $vicodec_skip"
  fi
fi
if [ "$strict" = 1 ] && [ "$not_built" -gt 0 ]; then
  failed=$((failed + not_built))
  log "FAIL: $not_built lab binaries were not built (a skip is a failure under CI)"
fi
log "VM ${boot_s}s (boot $(cat "$results/boot-seconds" 2>/dev/null || echo ?)s of it), total $(elapsed)s; $total checks, $failed failed"
log "artifacts: $lab_dir (console.log, results/, probe-report.json)"
[ $failed = 0 ]
