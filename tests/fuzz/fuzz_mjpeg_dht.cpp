// SPDX-License-Identifier: MIT
// libFuzzer target: Huffman-table insertion for camera MJPEG frames (outside input).
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "printcast/hal/mjpeg_dht.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::vector<uint8_t> out;  // reused, as the capture path reuses it
  if (printcast::hal::insertDefaultHuffmanTables({data, size}, out)) {
    assert(out.size() == size + printcast::hal::defaultHuffmanTablesSegment().size());
    // Inserting again finds the DHT that is now there.
    std::vector<uint8_t> again;
    assert(!printcast::hal::insertDefaultHuffmanTables(out, again));
  }
  return 0;
}
