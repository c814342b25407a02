# SPDX-License-Identifier: MIT
# CMake toolchain: 32-bit ARM hard-float for Cortex-A7 printers (Rockchip RV1106), Debian bookworm sysroot.
set(PRINTCAST_ARCH armhf)
set(_pc_processor arm)
set(_pc_triplet arm-linux-gnueabihf)
set(_pc_qemu qemu-arm-static)
# -Wno-psabi: GCC's note that GCC 7.1 changed how some arguments are passed on ARM (matters only
# when linking objects from GCC < 7; it floods every build with notes).
set(_pc_cpu_flags "-mcpu=cortex-a7 -mfpu=neon-vfpv4 -mfloat-abi=hard -Wno-psabi")
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
