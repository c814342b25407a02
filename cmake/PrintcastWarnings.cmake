# SPDX-License-Identifier: MIT
# Compiler warnings and sanitizers applied to every printcast target via printcast_target_defaults().
add_library(printcast_options INTERFACE)
# -Wnull-dereference is left out: GCC 12 reports false positives inside libstdc++ at -O2.
target_compile_options(printcast_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Woverloaded-virtual -Wformat=2 -Wimplicit-fallthrough)
if(PRINTCAST_WERROR)
  target_compile_options(printcast_options INTERFACE -Werror)
endif()
if(PRINTCAST_SANITIZE)
  target_compile_options(printcast_options INTERFACE -fsanitize=${PRINTCAST_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(printcast_options INTERFACE -fsanitize=${PRINTCAST_SANITIZE})
  # GCC warns that TSan does not model atomic_thread_fence. The shared-memory ring's seqlock
  # needs its fences (they order data copies against the sequence word); its concurrency is
  # between processes, which TSan does not see anyway, and is tested by the multi-process tests.
  if(PRINTCAST_SANITIZE MATCHES "thread" AND CMAKE_C_COMPILER_ID STREQUAL "GNU")
    target_compile_options(printcast_options INTERFACE -Wno-tsan)
  endif()
endif()
# x264's assembly marks the stack executable; never let it.
target_link_options(printcast_options INTERFACE -Wl,-z,noexecstack)
find_package(Threads REQUIRED)
target_link_libraries(printcast_options INTERFACE Threads::Threads)
# Sub-word atomics (std::atomic<bool>::exchange) are calls into libatomic on riscv64 with GCC 12.
include(CheckCXXSourceCompiles)
check_cxx_source_compiles("#include <atomic>
std::atomic<bool> b; std::atomic<unsigned char> c; std::atomic<long long> l;
int main() { return int(b.exchange(true)) + int(c.fetch_add(1)) + int(l.exchange(2)); }" PRINTCAST_ATOMICS_INLINE)
if(NOT PRINTCAST_ATOMICS_INLINE)
  target_link_libraries(printcast_options INTERFACE atomic)
endif()
