#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build a per-architecture sysroot from Debian packages with apt's private state (host untouched).
#
#   scripts/make-sysroot.sh ARCH [--static]     ARCH = armhf | aarch64 | riscv64 | amd64
#
# amd64 (x86-64, bookworm) is for static PC images: bench/memory.sh measures the static
# streamer, whose resident memory is what a printer's static image shows (pc-static preset).
#
# Prints the sysroot's path on its last line. armhf and aarch64 come from bookworm, riscv64 from
# trixie (bookworm has no riscv64 port). apt runs with its own sources list, state, cache and an
# empty dpkg status (-o Dir::State=... -o APT::Architecture=...), downloads the -dev packages
# the SDK uses and their dependencies, and `dpkg -x` unpacks each .deb: nothing on the host changes
# (no dpkg --add-architecture, no apt-get update of the host's lists).
#
# --static also builds what static firmware builds need and Debian does not ship, into
# <sysroot>/opt/printcast-static (cmake/PrintcastStatic.cmake looks there):
#   libmicrohttpd without HTTPS (Debian's static archive pulls GnuTLS -> p11-kit, which has no
#   static archive), from the Debian source of the sysroot's release (apt-get source with a
#   private deb-src list).
# armhf --static also gets, each in a prefix of its own, from the Debian sources of bookworm:
#   libavcodec + libavutil with only the H.264 decoder (<sysroot>/opt/printcast-avcodec): JPEGs
#   from H.264 cameras on the printers' images;
#   libx264 with only the 8-bit 4:2:0 encoder, no OpenCL (<sysroot>/opt/printcast-x264): Debian's
#   carries the 10-bit one too (the printer presets set PRINTCAST_STATIC_X264_8BIT);
#   libmosquitto, the client library only, without TLS (<sysroot>/opt/printcast-mosquitto): the
#   Anycubic MQTT responder on the printers' images, which speaks plain MQTT to a loopback TLS
#   tunnel of transport's mbedTLS client (Debian's libmosquitto needs OpenSSL).
# armhf's package list also has libmbedtls-dev (static archives, no .pc file): the TLS client of
# the printers' images (cmake/PrintcastDeps.cmake finds it by header and library names).
# riscv64 also gets GoogleTest built from the sysroot's own source (trixie's static libgtest.a
# is made by a newer binutils than bookworm's linker reads) into <sysroot>/opt/printcast-gtest.
#
# Cache: $PRINTCAST_SYSROOT_CACHE, default ~/.cache/printcast/sysroots (outside build/, so
# `make clean` and CI reruns keep it). A stamp file records the package list and script version;
# a rerun with the same list does nothing. A changed list unpacks the packages again but keeps the
# prefixes built from source that have stamps of their own (avcodec, x264, mosquitto: the same
# suite, and they use no -dev package of the list); libmicrohttpd and GoogleTest are rebuilt.
# Runs on one architecture are serialised (flock on <cache>/.lock-ARCH). Mirror: $PRINTCAST_DEBIAN_MIRROR, default the host's
# Debian mirror.
set -euo pipefail

arch=${1:-}
static=0
[ "${2:-}" = "--static" ] && static=1
here=$(cd "$(dirname "$0")/.." && pwd)

case "$arch" in
  armhf)   debarch=armhf;   suite=bookworm; triplet=arm-linux-gnueabihf ;;
  aarch64) debarch=arm64;   suite=bookworm; triplet=aarch64-linux-gnu ;;
  riscv64) debarch=riscv64; suite=trixie;   triplet=riscv64-linux-gnu ;;
  amd64)   debarch=amd64;   suite=bookworm; triplet=x86_64-linux-gnu ;;
  *) echo "usage: $0 armhf|aarch64|riscv64|amd64 [--static]" >&2; exit 2 ;;
esac

# The libraries the SDK finds through pkg-config (cmake/PrintcastDeps.cmake), minus libva
# (its Mesa/LLVM dependencies would triple the sysroot; VA-API is for x86 boards).
packages=(libc6-dev libturbojpeg0-dev libjpeg-dev libx264-dev libmicrohttpd-dev libyuv-dev
  libv4l-dev libdrm-dev libevdev-dev nettle-dev libfmt-dev libspdlog-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev googletest)
# riscv64: GCC 12 calls libatomic for sub-word atomics there (cmake/PrintcastWarnings.cmake).
[ "$arch" = riscv64 ] && packages+=(libatomic1)
# armhf: mbedTLS, the TLS client of the printers' static images (Debian's libmbedtls-dev has the
# static archives). With or without --static: both use this sysroot, and a list that differed
# between the two would unpack the sysroot again at every switch.
[ "$arch" = armhf ] && packages+=(libmbedtls-dev)
version=4  # bump when the layout below changes

cache=${PRINTCAST_SYSROOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/printcast/sysroots}
sysroot=$cache/$arch
state=$cache/.apt-$arch
stamp=$sysroot/.printcast-sysroot

mirror=${PRINTCAST_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(sed -n 's/^URIs:[[:space:]]*\(\S*\/debian\)\/*$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
  [ -n "$mirror" ] || mirror=$(awk '$1=="deb" && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
fi
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

# One run per architecture at a time: the cache is shared (CI and developers on one machine).
mkdir -p "$cache"
exec 9>"$cache/.lock-$arch"
flock 9

log() { echo "make-sysroot[$arch]: $*" >&2; }
want="v$version $suite $debarch ${packages[*]}"
start=$(date +%s)

apt_opts=(-q -o Dir::Etc="$state/etc" -o Dir::Etc::SourceList="$state/etc/sources.list"
  -o Dir::Etc::SourceParts="$state/etc/sources.list.d" -o Dir::Etc::Preferences="$state/etc/preferences"
  -o Dir::Etc::PreferencesParts="$state/etc/preferences.d" -o Dir::State="$state/state"
  -o Dir::State::status="$state/state/status" -o Dir::Cache="$state/cache" -o Dir::Log="$state/log"
  -o APT::Architecture="$debarch" -o APT::Architectures::="$debarch" -o Debug::NoLocking=1
  -o APT::Install-Recommends=0 -o APT::Install-Suggests=0 -o Acquire::Languages=none
  -o APT::Sandbox::User=root)

apt_setup() {
  mkdir -p "$state"/etc/sources.list.d "$state"/etc/preferences.d "$state"/state/lists/partial \
    "$state"/cache/archives/partial "$state"/log
  touch "$state/state/status"
  cat > "$state/etc/sources.list" <<EOF
deb [arch=$debarch signed-by=$keyring] $mirror $suite main
deb-src [signed-by=$keyring] $mirror $suite main
EOF
  if [ ! -f "$state/.updated" ] || [ "$(cat "$state/.updated")" != "$mirror $suite" ]; then
    log "apt-get update ($suite, $debarch, private state in $state)"
    apt-get "${apt_opts[@]}" update >&2
    echo "$mirror $suite" > "$state/.updated"
  fi
}

# Rewrite absolute symlinks (libfoo.so -> /lib/<triplet>/libfoo.so.1) to point inside the sysroot.
fix_symlinks() {
  find "$sysroot" -type l -lname '/*' | while read -r link; do
    target=$(readlink "$link")
    rel=$(realpath -m --relative-to="$(dirname "$link")" "$sysroot$target")
    ln -sfn "$rel" "$link"
  done
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  log "cached: $sysroot"
else
  apt_setup
  log "downloading ${#packages[@]} packages and their dependencies"
  rm -f "$state"/cache/archives/*.deb
  apt-get "${apt_opts[@]}" install -y --download-only "${packages[@]}" >&2
  # The prefixes built from Debian sources with stamps of their own survive a new package list
  # of the same suite: their stamps decide whether they are rebuilt (below).
  keep=$cache/.keep-$arch
  rm -rf "$keep" && mkdir -p "$keep"
  if [ -f "$stamp" ] && [ "$(cut -d' ' -f2,3 "$stamp")" = "$suite $debarch" ]; then
    for p in printcast-avcodec printcast-x264 printcast-mosquitto; do
      if [ -f "$sysroot/opt/$p/.stamp" ]; then
        mv "$sysroot/opt/$p" "$keep/$p"
        log "keeping $p ($(cat "$keep/$p/.stamp"))"
      fi
    done
  fi
  rm -rf "$sysroot"
  mkdir -p "$sysroot/usr/lib" "$sysroot/usr/bin" "$sysroot/usr/sbin"
  # Merged /usr, as on the target: lib -> usr/lib so that /lib and /usr/lib paths both resolve.
  for d in lib bin sbin; do ln -s "usr/$d" "$sysroot/$d"; done
  n=0
  for deb in "$state"/cache/archives/*.deb; do
    dpkg -x "$deb" "$sysroot"
    n=$((n + 1))
  done
  fix_symlinks
  # glibc's linker scripts (libc.so, libm.so) name /usr/lib/<triplet>/... absolute; the linker
  # resolves those inside --sysroot, but `-L<sysroot>` users need them relative.
  for script in "$sysroot/usr/lib/$triplet/libc.so" "$sysroot/usr/lib/$triplet/libm.so" "$sysroot/usr/lib/$triplet/libpthread.so"; do
    if [ -f "$script" ] && grep -q 'GNU ld script' "$script"; then
      sed -i -E "s@(^|[ (])/(usr/)?lib/$triplet/@\1@g" "$script"
    fi
  done
  rm -rf "$sysroot/opt/printcast-static" "$sysroot/opt/printcast-gtest"
  for p in "$keep"/*; do
    [ -e "$p" ] || continue
    mkdir -p "$sysroot/opt" && mv "$p" "$sysroot/opt/"
  done
  rm -rf "$keep"
  echo "$want" > "$stamp"
  log "$n packages unpacked into $sysroot ($(du -sh "$sysroot" | cut -f1)) in $(( $(date +%s) - start )) s"
fi

# riscv64 (trixie): its C++ libraries are built by GCC 14 and need libstdc++ symbol versions
# (CXXABI_1.3.15) that the GCC 12 cross compiler's own libstdc++.so lacks. -lstdc++ takes the
# sysroot's runtime instead (the toolchain file puts <sysroot>/usr/lib/<triplet> first); GCC 12's
# headers work with the newer runtime.
if [ "$suite" = trixie ] && [ -e "$sysroot/usr/lib/$triplet/libstdc++.so.6" ]; then
  ln -sfn libstdc++.so.6 "$sysroot/usr/lib/$triplet/libstdc++.so"
fi

# --- libmicrohttpd without HTTPS, static, from the Debian source of the sysroot's release --------
cross_env() {
  export CC=$triplet-gcc CXX=$triplet-g++ AR=$triplet-ar RANLIB=$triplet-ranlib STRIP=$triplet-strip
  case "$arch" in
    armhf) export CFLAGS="-O2 -mcpu=cortex-a7 -mfpu=neon-vfpv4 -mfloat-abi=hard -ffunction-sections -fdata-sections" ;;
    riscv64) export CFLAGS="-O2 -march=rv64gc -mabi=lp64d -ffunction-sections -fdata-sections" ;;
    *) export CFLAGS="-O2 -ffunction-sections -fdata-sections" ;;
  esac
}

mhd_prefix=$sysroot/opt/printcast-static
if [ "$static" = 1 ] && [ ! -f "$mhd_prefix/.stamp" ]; then
  apt_setup
  src=$state/src
  rm -rf "$src" && mkdir -p "$src"
  log "libmicrohttpd: Debian source ($suite) without HTTPS, static"
  (cd "$src" && apt-get "${apt_opts[@]}" source --download-only libmicrohttpd >&2)
  # dpkg-source unpacks the .orig tarball and applies Debian's patches.
  dir=$src/libmicrohttpd
  dpkg-source --no-check -x "$(ls "$src"/libmicrohttpd_*.dsc | head -1)" "$dir" >&2
  cross_env
  (cd "$dir" && ./configure --host="$triplet" --prefix=/opt/printcast-static --enable-static --disable-shared \
      --with-pic --disable-https --without-gnutls --disable-curl --disable-doc --disable-examples \
      --disable-nls --disable-tools >"$src/configure.log" 2>&1 || { tail -30 "$src/configure.log" >&2; exit 1; }
   make -j"$(nproc)" -C src/microhttpd >"$src/make.log" 2>&1 || { tail -30 "$src/make.log" >&2; exit 1; }
   make -C src/microhttpd install DESTDIR="$sysroot" >>"$src/make.log" 2>&1
   make -C src/include install DESTDIR="$sysroot" >>"$src/make.log" 2>&1
   install -D -m644 libmicrohttpd.pc "$mhd_prefix/lib/pkgconfig/libmicrohttpd.pc")
  rm -f "$mhd_prefix"/lib/*.la
  # The .pc names the prefix; pkg-config prepends PKG_CONFIG_SYSROOT_DIR to it.
  sed -n 's/^Version: //p' "$mhd_prefix/lib/pkgconfig/libmicrohttpd.pc" > "$mhd_prefix/.stamp"
  log "libmicrohttpd $(cat "$mhd_prefix/.stamp") static (no HTTPS) in $mhd_prefix"
fi

# --- armhf --static: libavcodec + libavutil with only the H.264 decoder, and an 8-bit libx264 ----
# The printers' images (Cortex-A7) decode an H.264 camera's pictures for /snapshot and MJPEG
# (gkcam's FLV in encoder_type gkcam, RTSP cameras) and must stay under 4 MiB: Debian's static
# libavcodec carries every codec and its dependencies, and Debian's libx264.a both the 8-bit and
# the 10-bit encoder and an OpenCL loader. Both come from the Debian source of the sysroot's
# release, libraries only (no programs, tests or docs), each into its own prefix with a stamp
# (recipe revision + Debian version) so it is built once: cmake/PrintcastStatic.cmake looks there.
# The dynamic cross builds (aarch64, riscv64) stay without libavcodec.
# debian_source PKG: unpacks PKG's Debian source (Debian's patches applied) into $state/src-PKG/PKG.
debian_source() {
  local pkg=$1 dir=$state/src-$1
  apt_setup
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$dir" && apt-get "${apt_opts[@]}" source --download-only "$pkg" >&2)
  dpkg-source --no-check -x "$(ls "$dir/${pkg}"_*.dsc | head -1)" "$dir/$pkg" >&2
}
# debian_version PKG: the version of the source just unpacked (its .dsc).
debian_version() { sed -n 's/^Version: //p' "$(ls "$state/src-$1/${1}"_*.dsc | head -1)"; }

avcodec_prefix=$sysroot/opt/printcast-avcodec
avcodec_recipe=1  # bump when the configure line below changes
if [ "$static" = 1 ] && [ "$arch" = armhf ] &&
   ! grep -qs "^r$avcodec_recipe " "$avcodec_prefix/.stamp"; then
  t0=$(date +%s)
  log "libavcodec + libavutil: Debian's ffmpeg source ($suite), H.264 decoder only, static"
  debian_source ffmpeg
  dir=$state/src-ffmpeg/ffmpeg
  rm -rf "$avcodec_prefix"
  # --disable-everything --enable-decoder=h264: the decoder and what it selects (h264dsp, qpel,
  # pred, cabac, videodsp), no parser or bitstream filter (codecs/src/h264_decoder_avcodec.cpp
  # sends whole access units), without error concealment (error_resilience + me_cmp, ~20 KB:
  # printcast gives only pictures decoded whole). --enable-small: -Os. --disable-autodetect: no
  # external library.
  # NEON on (the RV1106's Cortex-A7 has it). Pthreads stay: without them libavcodec's init lock
  # and ff_thread_once are no-ops, and each camera thread opens its own decoder. The subshell
  # drops cross_env's CC/CFLAGS: ffmpeg's configure takes its own flags.
  (unset CC CXX AR RANLIB STRIP CFLAGS
   cd "$dir" && ./configure --prefix=/opt/printcast-avcodec --enable-cross-compile --arch=arm --cpu=cortex-a7 \
      --target-os=linux --cross-prefix="$triplet-" \
      --extra-cflags="-mfpu=neon-vfpv4 -mfloat-abi=hard -ffunction-sections -fdata-sections" \
      --disable-everything --enable-decoder=h264 --disable-programs --disable-doc --disable-network \
      --disable-avdevice --disable-avformat --disable-swscale --disable-swresample --disable-postproc \
      --disable-avfilter --enable-static --disable-shared --enable-pic --enable-small --disable-autodetect \
      --disable-debug --disable-error-resilience \
      >"$dir/../configure.log" 2>&1 || { tail -30 "$dir/../configure.log" >&2; exit 1; }
   make -j"$(nproc)" >"$dir/../make.log" 2>&1 || { tail -30 "$dir/../make.log" >&2; exit 1; }
   make install DESTDIR="$sysroot" >>"$dir/../make.log" 2>&1 || { tail -30 "$dir/../make.log" >&2; exit 1; })
  echo "r$avcodec_recipe $(debian_version ffmpeg)" > "$avcodec_prefix/.stamp"
  rm -rf "$state/src-ffmpeg"
  log "libavcodec $(sed -n 's/^Version: //p' "$avcodec_prefix/lib/pkgconfig/libavcodec.pc") (ffmpeg" \
    "$(cut -d' ' -f2 "$avcodec_prefix/.stamp")) in $avcodec_prefix in $(( $(date +%s) - t0 )) s"
fi

x264_prefix=$sysroot/opt/printcast-x264
x264_recipe=1  # bump when the configure line below changes
if [ "$static" = 1 ] && [ "$arch" = armhf ] && ! grep -qs "^r$x264_recipe " "$x264_prefix/.stamp"; then
  t0=$(date +%s)
  log "libx264: Debian's x264 source ($suite), 8-bit 4:2:0 only, static"
  debian_source x264
  dir=$state/src-x264/x264
  rm -rf "$x264_prefix"
  # 8-bit 4:2:0 progressive is all codecs/src/encoder_x264.cpp asks for (I420, no interlacing).
  cross_env  # x264's configure adds $CFLAGS (the Cortex-A7/NEON flags) to its own
  (cd "$dir" && ./configure --host="$triplet" --cross-prefix="$triplet-" --prefix=/opt/printcast-x264 \
      --enable-static --disable-cli --disable-opencl --bit-depth=8 --chroma-format=420 --disable-interlaced \
      --enable-pic --disable-avs --disable-swscale --disable-lavf --disable-ffms --disable-gpac --disable-lsmash \
      >"$dir/../configure.log" 2>&1 || { tail -30 "$dir/../configure.log" >&2; exit 1; }
   make -j"$(nproc)" lib-static >"$dir/../make.log" 2>&1 || { tail -30 "$dir/../make.log" >&2; exit 1; }
   make install-lib-static DESTDIR="$sysroot" >>"$dir/../make.log" 2>&1 || { tail -30 "$dir/../make.log" >&2; exit 1; })
  echo "r$x264_recipe $(debian_version x264)" > "$x264_prefix/.stamp"
  rm -rf "$state/src-x264"
  log "libx264 $(cut -d' ' -f2 "$x264_prefix/.stamp") 8-bit in $x264_prefix in $(( $(date +%s) - t0 )) s"
fi

# libmosquitto for the printers' images: the client library of Debian's mosquitto source, static,
# without TLS (the Anycubic responder reaches the broker through transport's mbedTLS client and a
# loopback tunnel; Debian's libmosquitto links OpenSSL, ~2 MB static), SOCKS5, SRV lookups or
# cJSON, threading kept (mosquitto_loop_start's thread and the library's locks). -Os: it carries a
# few MQTT messages a second. CMake with the SDK's toolchain file (this sysroot's glibc headers).
mosq_prefix=$sysroot/opt/printcast-mosquitto
mosq_recipe=1  # bump when the cmake line or the .pc below changes
if [ "$static" = 1 ] && [ "$arch" = armhf ] && ! grep -qs "^r$mosq_recipe " "$mosq_prefix/.stamp"; then
  t0=$(date +%s)
  log "libmosquitto: Debian's mosquitto source ($suite), client library only, no TLS, static"
  debian_source mosquitto
  dir=$state/src-mosquitto/mosquitto
  build=$state/src-mosquitto/build
  rm -rf "$mosq_prefix"
  # CFLAGS, not CMAKE_C_FLAGS: CMake puts the toolchain file's CPU flags after it.
  (export CFLAGS="-ffunction-sections -fdata-sections"
   cmake -S "$dir" -B "$build" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$here/toolchain/$arch.cmake" \
      -DPRINTCAST_SYSROOT="$sysroot" -DCMAKE_BUILD_TYPE=MinSizeRel -DCMAKE_INSTALL_PREFIX=/opt/printcast-mosquitto \
      -DWITH_TLS=OFF -DWITH_TLS_PSK=OFF -DWITH_EC=OFF -DWITH_STATIC_LIBRARIES=ON -DWITH_PIC=ON -DWITH_THREADING=ON \
      -DWITH_SOCKS=OFF -DWITH_SRV=OFF -DWITH_CJSON=OFF -DWITH_DLT=OFF -DWITH_BROKER=OFF -DWITH_APPS=OFF \
      -DWITH_CLIENTS=OFF -DWITH_PLUGINS=OFF -DWITH_LIB_CPP=OFF -DDOCUMENTATION=OFF \
      >"$dir/../configure.log" 2>&1 || { tail -30 "$dir/../configure.log" >&2; exit 1; }
   cmake --build "$build" -j"$(nproc)" --target libmosquitto_static >"$dir/../make.log" 2>&1 ||
     { tail -30 "$dir/../make.log" >&2; exit 1; })
  # Its install rule would put the shared library in too: the archive, renamed for -lmosquitto,
  # and the two public headers.
  install -D -m644 "$build/lib/libmosquitto_static.a" "$mosq_prefix/lib/libmosquitto.a"
  install -D -m644 -t "$mosq_prefix/include" "$dir/include/mosquitto.h" "$dir/include/mqtt_protocol.h"
  mosq_version=$(debian_version mosquitto)
  mosq_upstream=${mosq_version#*:}
  mosq_upstream=${mosq_upstream%%-*}
  # Debian's .pc names the shared library's dependencies; this one the static archive's.
  mkdir -p "$mosq_prefix/lib/pkgconfig"
  cat > "$mosq_prefix/lib/pkgconfig/libmosquitto.pc" <<EOF
prefix=/opt/printcast-mosquitto
exec_prefix=\${prefix}
includedir=\${prefix}/include
libdir=\${exec_prefix}/lib

Name: mosquitto
Description: mosquitto MQTT library (C bindings), static, without TLS (scripts/make-sysroot.sh)
Version: $mosq_upstream
Cflags: -I\${includedir}
Libs: -L\${libdir} -lmosquitto
Libs.private: -lpthread
EOF
  echo "r$mosq_recipe $mosq_version" > "$mosq_prefix/.stamp"
  rm -rf "$state/src-mosquitto"
  log "libmosquitto $mosq_version (no TLS) in $mosq_prefix in $(( $(date +%s) - t0 )) s"
fi

# --- riscv64: GoogleTest from the sysroot's own source ------------------------------------------
gtest_prefix=$sysroot/opt/printcast-gtest
if [ "$arch" = riscv64 ] && [ ! -f "$gtest_prefix/.stamp" ]; then
  gsrc=$sysroot/usr/src/googletest
  gbuild=$state/gtest-build
  rm -rf "$gbuild"
  log "GoogleTest from $gsrc"
  cmake -S "$gsrc" -B "$gbuild" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$here/toolchain/$arch.cmake" \
    -DPRINTCAST_SYSROOT="$sysroot" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$gtest_prefix" \
    -DBUILD_GMOCK=ON -DINSTALL_GTEST=ON >"$state/gtest.log" 2>&1 || { tail -30 "$state/gtest.log" >&2; exit 1; }
  cmake --build "$gbuild" -j"$(nproc)" >>"$state/gtest.log" 2>&1 || { tail -30 "$state/gtest.log" >&2; exit 1; }
  cmake --install "$gbuild" >>"$state/gtest.log" 2>&1
  sed -n 's/^Version: //p' "$gtest_prefix"/lib/pkgconfig/gtest.pc > "$gtest_prefix/.stamp"
  rm -rf "$gbuild"
  log "GoogleTest $(cat "$gtest_prefix/.stamp") in $gtest_prefix"
fi

log "ready in $(( $(date +%s) - start )) s"
echo "$sysroot"
