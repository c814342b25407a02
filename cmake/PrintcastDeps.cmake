# SPDX-License-Identifier: MIT
# Third-party libraries. Each optional one has PRINTCAST_WITH_<NAME> = AUTO | ON | OFF:
# AUTO uses it when found, ON fails configure when missing, OFF never uses it. Every library
# is found through pkg-config (libyuv ships no .pc file: found by header and library name).
# A found library becomes the imported target printcast::<name>; PRINTCAST_HAVE_<NAME> says so.
find_package(PkgConfig REQUIRED)

set(_printcast_summary "")

function(_printcast_record name state detail)
  set(_printcast_summary "${_printcast_summary};${name}|${state}|${detail}" PARENT_SCOPE)
endfunction()

# printcast_dependency(NAME <UPPER> PKG <pkg-config module...> [DEFAULT AUTO|ON|OFF] [PURPOSE text])
macro(printcast_dependency)
  cmake_parse_arguments(_d "" "NAME;DEFAULT;PURPOSE;TARGET" "PKG" ${ARGN})
  if(NOT DEFINED _d_DEFAULT)  # not `NOT _d_DEFAULT`: that is true for DEFAULT OFF
    set(_d_DEFAULT AUTO)
  endif()
  set(PRINTCAST_WITH_${_d_NAME} ${_d_DEFAULT} CACHE STRING "Use ${_d_PURPOSE} (AUTO|ON|OFF)")
  set_property(CACHE PRINTCAST_WITH_${_d_NAME} PROPERTY STRINGS AUTO ON OFF)
  set(PRINTCAST_HAVE_${_d_NAME} OFF)
  if(NOT PRINTCAST_WITH_${_d_NAME} STREQUAL "OFF")
    pkg_check_modules(PC_${_d_NAME} QUIET IMPORTED_TARGET GLOBAL ${_d_PKG})
    if(PC_${_d_NAME}_FOUND)
      set(PRINTCAST_HAVE_${_d_NAME} ON)
      add_library(printcast::${_d_TARGET} ALIAS PkgConfig::PC_${_d_NAME})
      if(PRINTCAST_STATIC)
        # Static link: the archives' own dependencies (pkg-config --static: Libs.private, Requires.private).
        set_property(TARGET PkgConfig::PC_${_d_NAME} APPEND PROPERTY INTERFACE_LINK_LIBRARIES ${PC_${_d_NAME}_STATIC_LDFLAGS})
      endif()
      set(_detail "${PC_${_d_NAME}_VERSION}")
      if(NOT _detail)
        # Several modules: pkg-config gives each its own version; show the first one's.
        list(GET _d_PKG 0 _first)
        set(_detail "${PC_${_d_NAME}_${_first}_VERSION}")
      endif()
    elseif(PRINTCAST_WITH_${_d_NAME} STREQUAL "ON")
      message(FATAL_ERROR "PRINTCAST_WITH_${_d_NAME}=ON but pkg-config found no '${_d_PKG}' (${_d_PURPOSE})")
    else()
      set(_detail "not found")
    endif()
  else()
    set(_detail "disabled")
  endif()
  _printcast_record("${_d_NAME}" "${PRINTCAST_HAVE_${_d_NAME}}" "${_detail} - ${_d_PURPOSE}")
endmacro()

printcast_dependency(NAME TURBOJPEG TARGET turbojpeg PKG libturbojpeg PURPOSE "JPEG encode (libturbojpeg)")
printcast_dependency(NAME X264 TARGET x264 PKG x264 PURPOSE "H.264 software encode (libx264)")
printcast_dependency(NAME MICROHTTPD TARGET microhttpd PKG libmicrohttpd PURPOSE "HTTP server (libmicrohttpd)")
printcast_dependency(NAME V4L2 TARGET v4l2 PKG libv4l2 PURPOSE "V4L2 camera capture (libv4l2)")
printcast_dependency(NAME DRM TARGET drm PKG libdrm PURPOSE "DRM/KMS display capture (libdrm)")
printcast_dependency(NAME EVDEV TARGET evdev PKG libevdev PURPOSE "evdev touch injection (libevdev)")
printcast_dependency(NAME VA TARGET va PKG libva libva-drm PURPOSE "VA-API H.264 encode (libva)")
printcast_dependency(NAME NETTLE TARGET nettle PKG nettle PURPOSE "SHA-1/base64 for the WebSocket handshake (nettle)")
printcast_dependency(NAME AVCODEC TARGET avcodec PKG libavcodec libavutil
  PURPOSE "H.264 decode for JPEGs from H.264 cameras (libavcodec)")
# Shared builds load libavcodec/libavutil at the decoder's first use (dlopen: their library
# closure is ~20 MB of RSS, codecs/src/h264_decoder_avcodec.cpp): printcast::avcodec is then
# headers and compile flags only. Static builds link them (no dlopen there).
if(PRINTCAST_HAVE_AVCODEC AND NOT PRINTCAST_STATIC)
  set_target_properties(PkgConfig::PC_AVCODEC PROPERTIES INTERFACE_LINK_LIBRARIES "" INTERFACE_LINK_OPTIONS ""
    INTERFACE_LINK_DIRECTORIES "")
endif()
printcast_dependency(NAME MOSQUITTO TARGET mosquitto PKG libmosquitto
  PURPOSE "MQTT responder for Anycubic's go-klipper firmware (libmosquitto)")
# ONVIF camera discovery's SOAP (transport/onvif.h). pugixml rather than libxml2: one small static
# archive without dependencies (libxml2's pulls ICU, lzma and zlib), and it never fetches a DTD or
# expands an entity it was not built with. The cross sysroots (scripts/make-sysroot.sh) have none yet.
printcast_dependency(NAME PUGIXML TARGET pugixml PKG pugixml PURPOSE "XML for ONVIF camera discovery (pugixml)")
# Static builds (the printers' images) go without: Debian has no static p11-kit for GnuTLS.
if(PRINTCAST_STATIC)
  set(_printcast_gnutls_default OFF)
else()
  set(_printcast_gnutls_default AUTO)
endif()
printcast_dependency(NAME GNUTLS TARGET gnutls PKG gnutls DEFAULT ${_printcast_gnutls_default}
  PURPOSE "TLS client for rtmps:// publishing (GnuTLS)")
# mbedTLS: the TLS client where GnuTLS cannot go (static images: transport/src/tls_client_mbedtls.cpp).
# Debian's 2.28 ships no .pc file: found by header and library names, as libyuv below.
set(PRINTCAST_WITH_MBEDTLS AUTO CACHE STRING "Use mbedTLS as the TLS client when GnuTLS is not used (AUTO|ON|OFF)")
set_property(CACHE PRINTCAST_WITH_MBEDTLS PROPERTY STRINGS AUTO ON OFF)
set(PRINTCAST_HAVE_MBEDTLS OFF)
if(NOT PRINTCAST_WITH_MBEDTLS STREQUAL "OFF")
  find_path(MBEDTLS_INCLUDE_DIR mbedtls/ssl.h)
  find_library(MBEDTLS_TLS_LIBRARY mbedtls)
  find_library(MBEDTLS_X509_LIBRARY mbedx509)
  find_library(MBEDTLS_CRYPTO_LIBRARY mbedcrypto)
  if(MBEDTLS_INCLUDE_DIR AND MBEDTLS_TLS_LIBRARY AND MBEDTLS_X509_LIBRARY AND MBEDTLS_CRYPTO_LIBRARY)
    set(PRINTCAST_HAVE_MBEDTLS ON)
    add_library(printcast::mbedtls INTERFACE IMPORTED GLOBAL)
    # Link order: tls needs x509 needs crypto.
    set_target_properties(printcast::mbedtls PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${MBEDTLS_INCLUDE_DIR}"
      INTERFACE_LINK_LIBRARIES "${MBEDTLS_TLS_LIBRARY};${MBEDTLS_X509_LIBRARY};${MBEDTLS_CRYPTO_LIBRARY}")
    set(_h "${MBEDTLS_INCLUDE_DIR}/mbedtls/build_info.h")  # mbedTLS 3; version.h before
    if(NOT EXISTS "${_h}")
      set(_h "${MBEDTLS_INCLUDE_DIR}/mbedtls/version.h")
    endif()
    file(STRINGS "${_h}" _v REGEX "define MBEDTLS_VERSION_STRING ")
    string(REGEX REPLACE ".*\"(.*)\".*" "\\1" _v "${_v}")
    _printcast_record(MBEDTLS ON "${_v} - TLS client without GnuTLS (mbedTLS)")
  elseif(PRINTCAST_WITH_MBEDTLS STREQUAL "ON")
    message(FATAL_ERROR "PRINTCAST_WITH_MBEDTLS=ON but mbedtls/ssl.h / libmbedtls, libmbedx509, libmbedcrypto were not found")
  else()
    _printcast_record(MBEDTLS OFF "not found - TLS client without GnuTLS (mbedTLS)")
  endif()
else()
  _printcast_record(MBEDTLS OFF "disabled - TLS client without GnuTLS (mbedTLS)")
endif()
if(PRINTCAST_STATIC AND PRINTCAST_HAVE_MICROHTTPD AND "${PC_MICROHTTPD_STATIC_LIBRARIES}" MATCHES "gnutls")
  message(FATAL_ERROR "PRINTCAST_STATIC=ON: this libmicrohttpd pulls GnuTLS (no static p11-kit in Debian). "
    "Build one without HTTPS: scripts/make-sysroot.sh <arch> --static")
endif()

# libyuv: Debian ships neither a .pc file nor a CMake config.
set(PRINTCAST_WITH_LIBYUV AUTO CACHE STRING "Use libyuv colour conversion/rotation (AUTO|ON|OFF)")
set_property(CACHE PRINTCAST_WITH_LIBYUV PROPERTY STRINGS AUTO ON OFF)
set(PRINTCAST_HAVE_LIBYUV OFF)
if(NOT PRINTCAST_WITH_LIBYUV STREQUAL "OFF")
  find_path(LIBYUV_INCLUDE_DIR libyuv.h)
  find_library(LIBYUV_LIBRARY yuv)
  if(LIBYUV_INCLUDE_DIR AND LIBYUV_LIBRARY)
    set(PRINTCAST_HAVE_LIBYUV ON)
    add_library(printcast::yuv UNKNOWN IMPORTED GLOBAL)
    set_target_properties(printcast::yuv PROPERTIES IMPORTED_LOCATION "${LIBYUV_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${LIBYUV_INCLUDE_DIR}")
    if(PRINTCAST_STATIC)
      # libyuv.a decodes MJPEG with libjpeg.
      find_library(LIBYUV_JPEG_LIBRARY jpeg REQUIRED)
      set_target_properties(printcast::yuv PROPERTIES INTERFACE_LINK_LIBRARIES "${LIBYUV_JPEG_LIBRARY}")
    endif()
    _printcast_record(LIBYUV ON "${LIBYUV_LIBRARY} - colour conversion/rotation (libyuv)")
  elseif(PRINTCAST_WITH_LIBYUV STREQUAL "ON")
    message(FATAL_ERROR "PRINTCAST_WITH_LIBYUV=ON but libyuv.h / libyuv were not found")
  else()
    _printcast_record(LIBYUV OFF "not found - colour conversion/rotation (libyuv)")
  endif()
else()
  _printcast_record(LIBYUV OFF "disabled - colour conversion/rotation (libyuv)")
endif()

# Header-only and always-required libraries.
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 REQUIRED)
if(PRINTCAST_STATIC)
  # Debian ships fmt and spdlog as shared libraries only: header-only for static builds.
  find_path(FMT_INCLUDE_DIR fmt/core.h REQUIRED)
  find_path(SPDLOG_INCLUDE_DIR spdlog/spdlog.h REQUIRED)
  set(_h "${FMT_INCLUDE_DIR}/fmt/base.h")  # fmt >= 11; fmt/core.h before
  if(NOT EXISTS "${_h}")
    set(_h "${FMT_INCLUDE_DIR}/fmt/core.h")
  endif()
  file(STRINGS "${_h}" _v REGEX "define FMT_VERSION ")
  string(REGEX REPLACE ".*FMT_VERSION ([0-9]+).*" "\\1" _v "${_v}")
  math(EXPR _major "${_v} / 10000")
  math(EXPR _minor "${_v} / 100 % 100")
  math(EXPR _patch "${_v} % 100")
  set(fmt_VERSION "${_major}.${_minor}.${_patch}")
  file(STRINGS "${SPDLOG_INCLUDE_DIR}/spdlog/version.h" _v REGEX "define SPDLOG_VER_(MAJOR|MINOR|PATCH) ")
  string(REGEX REPLACE "[^0-9;]" "" _v "${_v}")
  string(REPLACE ";" "." spdlog_VERSION "${_v}")
  add_library(fmt::fmt INTERFACE IMPORTED GLOBAL)
  set_target_properties(fmt::fmt PROPERTIES INTERFACE_COMPILE_DEFINITIONS "FMT_HEADER_ONLY=1"
    INTERFACE_INCLUDE_DIRECTORIES "${FMT_INCLUDE_DIR}")
  add_library(spdlog::spdlog INTERFACE IMPORTED GLOBAL)
  set_target_properties(spdlog::spdlog PROPERTIES INTERFACE_COMPILE_DEFINITIONS "SPDLOG_FMT_EXTERNAL"
    INTERFACE_INCLUDE_DIRECTORIES "${SPDLOG_INCLUDE_DIR}" INTERFACE_LINK_LIBRARIES "fmt::fmt")
else()
  find_package(fmt REQUIRED)
  find_package(spdlog REQUIRED)
endif()
_printcast_record(JSON ON "nlohmann_json ${nlohmann_json_VERSION} (required)")
_printcast_record(CLI11 ON "CLI11 ${CLI11_VERSION} (required)")
_printcast_record(SPDLOG ON "spdlog ${spdlog_VERSION}, fmt ${fmt_VERSION} (required)")

# The reference streamer needs these; the SDK libraries build without them.
foreach(_req TURBOJPEG X264 MICROHTTPD LIBYUV NETTLE)
  if(NOT PRINTCAST_HAVE_${_req})
    message(WARNING "${_req} is missing: the codecs/streamer parts that use it are left out")
  endif()
endforeach()

function(printcast_print_summary)
  message(STATUS "")
  message(STATUS "printcast ${PROJECT_VERSION} configuration")
  message(STATUS "  build type      : ${CMAKE_BUILD_TYPE}")
  message(STATUS "  compiler        : ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION}")
  message(STATUS "  warnings=errors : ${PRINTCAST_WERROR}")
  message(STATUS "  sanitizers      : ${PRINTCAST_SANITIZE}")
  message(STATUS "  boards          : ${PRINTCAST_BOARD_LIST}")
  message(STATUS "  ----------------+-------+------------------------------------------")
  message(STATUS "  dependency      | used  | version / purpose")
  message(STATUS "  ----------------+-------+------------------------------------------")
  foreach(_row ${_printcast_summary})
    if(_row)
      string(REPLACE "|" ";" _cols "${_row}")
      list(GET _cols 0 _n)
      list(GET _cols 1 _s)
      list(GET _cols 2 _v)
      string(LENGTH "${_n}" _l)
      math(EXPR _pad "16 - ${_l}")
      string(REPEAT " " ${_pad} _sp)
      if(_s)
        set(_s "yes  ")
      else()
        set(_s "no   ")
      endif()
      message(STATUS "  ${_n}${_sp}| ${_s} | ${_v}")
    endif()
  endforeach()
  message(STATUS "")
endfunction()
