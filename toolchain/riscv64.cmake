# SPDX-License-Identifier: MIT
# CMake toolchain: 64-bit RISC-V rv64gc (Sophgo SG2002 and other RISC-V boards), Debian trixie sysroot.
# GCC 12 cannot target the SG2002's RVV 0.7.1 vector unit: plain rv64gc.
set(PRINTCAST_ARCH riscv64)
set(_pc_processor riscv64)
set(_pc_triplet riscv64-linux-gnu)
set(_pc_qemu qemu-riscv64-static)
set(_pc_cpu_flags "-march=rv64gc -mabi=lp64d")
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
# The sysroot is trixie (glibc 2.41), the cross compiler bookworm's (glibc 2.36): start files and
# libc come from the sysroot, so trixie's libraries find the glibc symbols they were built against.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-B${PRINTCAST_SYSROOT}/usr/lib/${_pc_triplet} -L${PRINTCAST_SYSROOT}/usr/lib/${_pc_triplet}")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "${CMAKE_EXE_LINKER_FLAGS_INIT}")
# GoogleTest built from the sysroot's source by make-sysroot.sh (trixie's libgtest.a needs a newer ld).
list(APPEND CMAKE_PREFIX_PATH /opt/printcast-gtest)
