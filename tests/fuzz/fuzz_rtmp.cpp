// SPDX-License-Identifier: MIT
// libFuzzer target: what an RTMP server sends a publisher after the handshake
// (transport/rtmp_publish.h): the chunk stream through rtmp::ChunkReader (64 KiB message limit),
// fed in two pieces split at (first byte * rest / 256), and every command or data message's
// payload through decodeAmf0. Oracles: messages fit the limit; once feed() failed it stays failed;
// decoded objects find their keys.
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <span>

#include "printcast/transport/rtmp_publish.h"

namespace rtmp = printcast::transport::rtmp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t split = static_cast<size_t>(data[0]) * (size - 1) / 256;
  ++data;
  --size;
  constexpr size_t kLimit = 64 * 1024;
  rtmp::ChunkReader reader(kLimit);
  const bool first = reader.feed(std::span<const uint8_t>(data, split)).ok();
  const bool second = reader.feed(std::span<const uint8_t>(data + split, size - split)).ok();
  assert(first || !second);
  rtmp::Message m;
  while (reader.pop(m)) {
    assert(m.payload.size() <= kLimit);
    if (m.type != 20 && m.type != 18) continue;
    if (auto values = rtmp::decodeAmf0(m.payload)) {
      for (const auto& v : *values) {
        for (const auto& [key, child] : v.object) assert(v.get(key) != nullptr);
      }
    }
  }
  return 0;
}
