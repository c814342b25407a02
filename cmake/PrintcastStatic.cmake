# SPDX-License-Identifier: MIT
# Static firmware builds (PRINTCAST_STATIC=ON): static archives only, stripped, no exec stack, per-binary size report.
#
# Printers run uClibc (RV1106) and the SG2002 SDK musl, so Debian's glibc shared libraries do not
# run there: firmware links everything statically. Included before PrintcastDeps.cmake, so the
# pkg-config lookups there find .a files; printcast_firmware_binaries() is called after the apps.
option(PRINTCAST_STATIC "Link executables fully statically, stripped, with a size report (firmware images)" OFF)

if(PRINTCAST_STATIC)
  # Only static archives; pkg-config's Libs.private are added per dependency (PrintcastDeps.cmake).
  set(CMAKE_FIND_LIBRARY_SUFFIXES .a)
  # Size: one section per function/object so the linker drops what nothing references.
  string(APPEND CMAKE_C_FLAGS " -ffunction-sections -fdata-sections")
  string(APPEND CMAKE_CXX_FLAGS " -ffunction-sections -fdata-sections")
  # -static: every library, the C and C++ runtimes included. -s: stripped. x264's assembly marks
  # the stack executable: never let it (every binary, printcast_options or not).
  string(APPEND CMAKE_EXE_LINKER_FLAGS " -static -s -Wl,--gc-sections -Wl,-z,noexecstack")

  # Libraries built from source for static builds (scripts/make-sysroot.sh ARCH --static):
  # libmicrohttpd without HTTPS. Its .pc names the prefix inside the sysroot (so do the others').
  set(PRINTCAST_STATIC_PREFIX "/opt/printcast-static" CACHE STRING
    "Prefix (inside the sysroot) of the libraries make-sysroot.sh --static builds")
  # FindPkgConfig puts <prefix>/lib/pkgconfig of each CMAKE_PREFIX_PATH entry on PKG_CONFIG_PATH,
  # ahead of the sysroot's PKG_CONFIG_LIBDIR. (Not the environment: try_compile() re-reads the
  # toolchain file in this process and resets it.)
  if(EXISTS "${CMAKE_SYSROOT}${PRINTCAST_STATIC_PREFIX}/lib/pkgconfig")
    list(PREPEND CMAKE_PREFIX_PATH "${CMAKE_SYSROOT}${PRINTCAST_STATIC_PREFIX}")
  endif()
  # armhf: libavcodec + libavutil with only the H.264 decoder (JPEGs from H.264 cameras), in a
  # prefix of their own. Debian ships no libavcodec in the cross sysroots.
  if(EXISTS "${CMAKE_SYSROOT}/opt/printcast-avcodec/lib/pkgconfig")
    list(PREPEND CMAKE_PREFIX_PATH "${CMAKE_SYSROOT}/opt/printcast-avcodec")
  endif()
  # armhf: libmosquitto without TLS (the Anycubic MQTT responder; TLS is transport's mbedTLS
  # client). Debian's libmosquitto.a links OpenSSL, and the armhf sysroot has none.
  if(EXISTS "${CMAKE_SYSROOT}/opt/printcast-mosquitto/lib/pkgconfig")
    list(PREPEND CMAKE_PREFIX_PATH "${CMAKE_SYSROOT}/opt/printcast-mosquitto")
  endif()
  # The printer images (rv1106 presets): libx264 with only the 8-bit 4:2:0 encoder, no OpenCL
  # (Debian's libx264.a carries the 8-bit and the 10-bit encoder, ~0.6 MB more in the image).
  # armhf-test keeps Debian's: the decoder's unit test encodes 4:2:2, 4:4:4 and 10-bit streams.
  option(PRINTCAST_STATIC_X264_8BIT "Static builds: link the 8-bit-only libx264 of make-sysroot.sh --static (<sysroot>/opt/printcast-x264)" OFF)
  if(PRINTCAST_STATIC_X264_8BIT)
    if(NOT EXISTS "${CMAKE_SYSROOT}/opt/printcast-x264/lib/pkgconfig/x264.pc")
      message(FATAL_ERROR "PRINTCAST_STATIC_X264_8BIT=ON: no ${CMAKE_SYSROOT}/opt/printcast-x264; "
        "run scripts/make-sysroot.sh ${PRINTCAST_ARCH} --static")
    endif()
    list(PREPEND CMAKE_PREFIX_PATH "${CMAKE_SYSROOT}/opt/printcast-x264")
  endif()
  # A build folder configured before with the other libx264: pkg-config's cached answer and the
  # archive found from it would stay. Look them up again (PrintcastDeps.cmake's PC_X264).
  if(NOT "${PRINTCAST_STATIC_X264_8BIT}" STREQUAL "${_PRINTCAST_X264_8BIT_FOUND_WITH}")
    unset(__pkg_config_checked_PC_X264 CACHE)
    unset(pkgcfg_lib_PC_X264_x264 CACHE)
    set(_PRINTCAST_X264_8BIT_FOUND_WITH "${PRINTCAST_STATIC_X264_8BIT}" CACHE INTERNAL "")
  endif()

  # Debian ships no static libva: VA-API is for x86 boards, not firmware images.
  if(PRINTCAST_WITH_VA STREQUAL "ON")
    message(FATAL_ERROR "PRINTCAST_STATIC=ON: VA-API has no static archive in Debian; set PRINTCAST_WITH_VA=OFF")
  endif()
  set(PRINTCAST_WITH_VA OFF CACHE STRING "Use VA-API H.264 encode (libva) (AUTO|ON|OFF)" FORCE)
endif()

# Called after the apps are added: map file and size report for each firmware executable.
# The report (build/<preset>/size-report/<binary>.txt, also printed) gives the stripped size,
# the sections (`size`) and the bytes each input archive/object brings in (from the linker map).
function(printcast_firmware_binaries)
  if(NOT PRINTCAST_STATIC)
    return()
  endif()
  # binutils' size beside the nm CMake found (arm-linux-gnueabihf-nm -> arm-linux-gnueabihf-size).
  string(REGEX REPLACE "nm$" "size" _size_tool "${CMAKE_NM}")
  if(NOT EXISTS "${_size_tool}")
    set(_size_tool size)
  endif()
  set(_reports "")
  foreach(_bin ${ARGN})
    if(NOT TARGET ${_bin})
      continue()
    endif()
    set(_map "${CMAKE_BINARY_DIR}/size-report/${_bin}.map")
    set(_report "${CMAKE_BINARY_DIR}/size-report/${_bin}.txt")
    target_link_options(${_bin} PRIVATE "-Wl,-Map=${_map}")
    add_custom_command(OUTPUT "${_report}"
      COMMAND "${PROJECT_SOURCE_DIR}/scripts/size-report.sh" "$<TARGET_FILE:${_bin}>" "${_map}" "${_size_tool}"
              > "${_report}"
      COMMAND "${CMAKE_COMMAND}" -E cat "${_report}"
      DEPENDS ${_bin} "${PROJECT_SOURCE_DIR}/scripts/size-report.sh"
      COMMENT "Size report: ${_bin}"
      VERBATIM)
    list(APPEND _reports "${_report}")
  endforeach()
  if(_reports)
    file(MAKE_DIRECTORY "${CMAKE_BINARY_DIR}/size-report")
    add_custom_target(printcast-size-report ALL DEPENDS ${_reports})
  endif()
endfunction()

# A Rinkhals app package of the streamer for one printer model (PRINTCAST_RINKHALS_MODEL, set by
# the <model>-release presets): target `rinkhals-package` writes
# ${PRINTCAST_RINKHALS_OUTPUT_DIR}/printcast-<model>.zip; ctest's `rinkhals_package` (label
# "package") unpacks it and checks it (scripts/check-rinkhals-package.sh).
set(PRINTCAST_RINKHALS_MODEL "" CACHE STRING "Board id of the printer to package a Rinkhals app for (empty: none)")
set(PRINTCAST_RINKHALS_OUTPUT_DIR "${PROJECT_SOURCE_DIR}/build/rinkhals" CACHE PATH "Where rinkhals-package writes its zip")
if(PRINTCAST_RINKHALS_MODEL)
  enable_testing()  # here, not in the function: it sets a variable of the top-level scope
endif()
function(printcast_rinkhals_package)
  if(NOT PRINTCAST_RINKHALS_MODEL OR NOT TARGET printcast-streamer)
    return()
  endif()
  if(NOT PRINTCAST_STATIC)
    message(FATAL_ERROR "PRINTCAST_RINKHALS_MODEL needs PRINTCAST_STATIC=ON (the printers run uClibc)")
  endif()
  set(_zip "${PRINTCAST_RINKHALS_OUTPUT_DIR}/printcast-${PRINTCAST_RINKHALS_MODEL}.zip")
  set(_src "${PROJECT_SOURCE_DIR}/apps/rinkhals")
  add_custom_command(OUTPUT "${_zip}"
    COMMAND "${PROJECT_SOURCE_DIR}/scripts/package-rinkhals.sh" "${PRINTCAST_RINKHALS_MODEL}"
            "$<TARGET_FILE:printcast-streamer>" "${PROJECT_VERSION}" "${_zip}"
    DEPENDS printcast-streamer "${_src}/app.json" "${_src}/app.sh" "${PROJECT_SOURCE_DIR}/scripts/package-rinkhals.sh"
    COMMENT "Rinkhals app: ${_zip}"
    VERBATIM)
  add_custom_target(rinkhals-package DEPENDS "${_zip}")
  add_test(NAME rinkhals_package
    COMMAND "${PROJECT_SOURCE_DIR}/scripts/check-rinkhals-package.sh" "${_zip}" "${PRINTCAST_RINKHALS_MODEL}"
            ${CMAKE_CROSSCOMPILING_EMULATOR})
  set_tests_properties(rinkhals_package PROPERTIES LABELS package TIMEOUT 120)
  # The streamer itself: stripped, static, within the firmware size budget (4 MiB).
  add_test(NAME firmware_size
    COMMAND sh -c "s=$(stat -c %s \"$1\"); echo \"$1: $s bytes\"; test \"$s\" -lt 4194304" sh "$<TARGET_FILE:printcast-streamer>")
  set_tests_properties(firmware_size PROPERTIES LABELS package)
endfunction()
