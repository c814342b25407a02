# SPDX-License-Identifier: MIT
# Shared part of armhf/aarch64/riscv64.cmake: Debian's cross GCC, a sysroot from scripts/make-sysroot.sh, pkg-config and qemu-user.
#
# Set by the including file: PRINTCAST_ARCH (armhf|aarch64|riscv64), _pc_processor, _pc_triplet,
# _pc_qemu (qemu-user binary), _pc_cpu_flags. Variables a user may set (-D or environment):
#   PRINTCAST_SYSROOT        the sysroot (default: $PRINTCAST_SYSROOT, else
#                            $PRINTCAST_SYSROOT_CACHE/<arch>, else ~/.cache/printcast/sysroots/<arch>)
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR ${_pc_processor})

# Compiler: Debian's cross GCC 12 (crossbuild-essential-armhf/arm64, g++-riscv64-linux-gnu).
set(CMAKE_C_COMPILER ${_pc_triplet}-gcc)
set(CMAKE_CXX_COMPILER ${_pc_triplet}-g++)
set(CMAKE_C_FLAGS_INIT "${_pc_cpu_flags}")
set(CMAKE_CXX_FLAGS_INIT "${_pc_cpu_flags}")

# Sysroot. try_compile() projects re-read this file: pass the variable on.
if(NOT PRINTCAST_SYSROOT)
  if(DEFINED ENV{PRINTCAST_SYSROOT} AND NOT "$ENV{PRINTCAST_SYSROOT}" STREQUAL "")
    set(PRINTCAST_SYSROOT "$ENV{PRINTCAST_SYSROOT}")
  elseif(DEFINED ENV{PRINTCAST_SYSROOT_CACHE} AND NOT "$ENV{PRINTCAST_SYSROOT_CACHE}" STREQUAL "")
    set(PRINTCAST_SYSROOT "$ENV{PRINTCAST_SYSROOT_CACHE}/${PRINTCAST_ARCH}")
  else()
    set(PRINTCAST_SYSROOT "$ENV{HOME}/.cache/printcast/sysroots/${PRINTCAST_ARCH}")
  endif()
endif()
set(PRINTCAST_SYSROOT "${PRINTCAST_SYSROOT}" CACHE PATH "Target sysroot (scripts/make-sysroot.sh ${PRINTCAST_ARCH})")
if(NOT EXISTS "${PRINTCAST_SYSROOT}/usr/lib/${_pc_triplet}")
  message(FATAL_ERROR "No ${PRINTCAST_ARCH} sysroot at ${PRINTCAST_SYSROOT}: run scripts/make-sysroot.sh ${PRINTCAST_ARCH}")
endif()
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES PRINTCAST_SYSROOT)
set(CMAKE_SYSROOT "${PRINTCAST_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config: only the sysroot's .pc files, their paths prefixed with the sysroot.
set(ENV{PKG_CONFIG_LIBDIR} "${PRINTCAST_SYSROOT}/usr/lib/${_pc_triplet}/pkgconfig:${PRINTCAST_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${PRINTCAST_SYSROOT}")
set(ENV{PKG_CONFIG_PATH} "")

# Tests run under qemu-user (no binfmt_misc needed): ctest and gtest_discover_tests use this.
# The host's own architecture (amd64) needs none.
if(_pc_qemu)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${_pc_qemu};-L;${PRINTCAST_SYSROOT}")
endif()
