# SPDX-License-Identifier: MIT
# CMake toolchain: an external vendor toolchain and its sysroot (uClibc for the RV1106, musl for the SG2002), given by variables.
#
#   cmake -S . -B build/vendor -DCMAKE_TOOLCHAIN_FILE=toolchain/vendor.cmake \
#     -DPRINTCAST_VENDOR_PREFIX=/opt/arm-rockchip830-linux-uclibcgnueabihf/bin/arm-rockchip830-linux-uclibcgnueabihf- \
#     -DPRINTCAST_VENDOR_PROCESSOR=arm -DPRINTCAST_VENDOR_CPU_FLAGS="-mcpu=cortex-a7 -mfpu=neon-vfpv4 -mfloat-abi=hard" \
#     -DPRINTCAST_STATIC=ON
#
# Variables (-D, or the environment variable of the same name):
#   PRINTCAST_VENDOR_PREFIX     required: compiler path up to "gcc"/"g++" (".../bin/<triplet>-")
#   PRINTCAST_VENDOR_SYSROOT    the toolchain's sysroot with the libraries built for it
#                               (default: what "<prefix>gcc -print-sysroot" answers)
#   PRINTCAST_VENDOR_PROCESSOR  arm | aarch64 | riscv64 (CMAKE_SYSTEM_PROCESSOR; default arm)
#   PRINTCAST_VENDOR_CPU_FLAGS  CPU flags for every compile and link (default none)
#   PRINTCAST_VENDOR_EMULATOR   how to run target binaries (default qemu-<processor>-static -L <sysroot>;
#                               "none" for no emulator, e.g. when the tests run on the board)
set(CMAKE_SYSTEM_NAME Linux)

foreach(_v PRINTCAST_VENDOR_PREFIX PRINTCAST_VENDOR_SYSROOT PRINTCAST_VENDOR_PROCESSOR PRINTCAST_VENDOR_CPU_FLAGS
           PRINTCAST_VENDOR_EMULATOR)
  if(NOT DEFINED ${_v} AND DEFINED ENV{${_v}})
    set(${_v} "$ENV{${_v}}")
  endif()
endforeach()
# try_compile() projects re-read this file: pass the variables on.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES PRINTCAST_VENDOR_PREFIX PRINTCAST_VENDOR_SYSROOT
  PRINTCAST_VENDOR_PROCESSOR PRINTCAST_VENDOR_CPU_FLAGS PRINTCAST_VENDOR_EMULATOR)

if(NOT PRINTCAST_VENDOR_PREFIX)
  message(FATAL_ERROR "toolchain/vendor.cmake: set PRINTCAST_VENDOR_PREFIX to the compiler prefix, "
                      "e.g. /opt/sdk/bin/riscv64-unknown-linux-musl-")
endif()
if(NOT PRINTCAST_VENDOR_PROCESSOR)
  set(PRINTCAST_VENDOR_PROCESSOR arm)
endif()
set(CMAKE_SYSTEM_PROCESSOR ${PRINTCAST_VENDOR_PROCESSOR})

# Compiler.
set(CMAKE_C_COMPILER "${PRINTCAST_VENDOR_PREFIX}gcc")
set(CMAKE_CXX_COMPILER "${PRINTCAST_VENDOR_PREFIX}g++")
set(CMAKE_C_FLAGS_INIT "${PRINTCAST_VENDOR_CPU_FLAGS}")
set(CMAKE_CXX_FLAGS_INIT "${PRINTCAST_VENDOR_CPU_FLAGS}")

# Sysroot.
if(NOT PRINTCAST_VENDOR_SYSROOT)
  execute_process(COMMAND "${CMAKE_C_COMPILER}" ${PRINTCAST_VENDOR_CPU_FLAGS} -print-sysroot
    OUTPUT_VARIABLE PRINTCAST_VENDOR_SYSROOT OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
endif()
if(PRINTCAST_VENDOR_SYSROOT)
  set(CMAKE_SYSROOT "${PRINTCAST_VENDOR_SYSROOT}")
endif()
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config: only the sysroot's .pc files (vendor SDKs keep them in usr/lib or lib).
set(ENV{PKG_CONFIG_LIBDIR} "${PRINTCAST_VENDOR_SYSROOT}/usr/lib/pkgconfig:${PRINTCAST_VENDOR_SYSROOT}/usr/share/pkgconfig:${PRINTCAST_VENDOR_SYSROOT}/lib/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${PRINTCAST_VENDOR_SYSROOT}")
set(ENV{PKG_CONFIG_PATH} "")

# Emulator for ctest / gtest_discover_tests.
if(NOT PRINTCAST_VENDOR_EMULATOR)
  set(_qemu_arch ${PRINTCAST_VENDOR_PROCESSOR})
  if(_qemu_arch MATCHES "^arm")
    set(_qemu_arch arm)
  endif()
  set(PRINTCAST_VENDOR_EMULATOR "qemu-${_qemu_arch}-static;-L;${PRINTCAST_VENDOR_SYSROOT}")
endif()
if(NOT PRINTCAST_VENDOR_EMULATOR STREQUAL "none")
  set(CMAKE_CROSSCOMPILING_EMULATOR "${PRINTCAST_VENDOR_EMULATOR}")
endif()
