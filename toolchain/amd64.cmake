# SPDX-License-Identifier: MIT
# CMake toolchain: x86-64 against a Debian bookworm sysroot (scripts/make-sysroot.sh amd64), for
# static PC images (the pc-static preset). Runs natively: no emulator.
set(PRINTCAST_ARCH amd64)
set(_pc_processor x86_64)
set(_pc_triplet x86_64-linux-gnu)
set(_pc_qemu "")
set(_pc_cpu_flags "")
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
