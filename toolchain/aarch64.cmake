# SPDX-License-Identifier: MIT
# CMake toolchain: 64-bit ARM (Raspberry Pi 3/4/5 and other AArch64 boards), Debian bookworm sysroot.
set(PRINTCAST_ARCH aarch64)
set(_pc_processor aarch64)
set(_pc_triplet aarch64-linux-gnu)
set(_pc_qemu qemu-aarch64-static)
set(_pc_cpu_flags "")
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
